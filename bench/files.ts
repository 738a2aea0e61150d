// The person's files in a remote sandbox (`ebp run --share`), against OpenSSH's sshfs on loopback:
// a private sshd on 127.0.0.1 (its own host key, config and port; root logs in with a key made
// here) serves the same folder with its sftp-server, mounted by a plain `sshfs` inside a private
// mount namespace (so that nothing shows in this machine's mount table, even if this dies).
// The same shell script runs on both mounts and times, inside, three jobs:
//   write: dd 200 MiB into a new file (conv=fsync), read: dd it back to /dev/null,
//   metadata: tar of 5,000 small files piped to cat.
// ebp's figures are timed inside the sandbox (the launch and the mount are not in them).
// Ratios: throughput ebp/sshfs (target >= 1.0) for write and read; time ebp/sshfs (target <= 1.0)
// for the metadata job; each the median of the ratios of back-to-back pairs. Root only. Everything started or made is undone at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort, must } from './proc.js';
import { DAEMON_NODE_FLAGS } from '../src/daemon/node-flags.js';

export const FILES_TARGETS = { write: 1.0, read: 1.0, metadata: 1.0 } as const;

export interface FilesTimes {
  readonly writeMs: number;
  readonly readMs: number;
  readonly metadataMs: number;
  /** The size of the tar the metadata job made: the same as here, or the job failed part-way. */
  readonly tarBytes: number;
}

export interface FilesResult {
  readonly skipped?: string;
  readonly runs: number;
  readonly megabytes: number;
  readonly smallFiles: number;
  readonly ebp?: FilesTimes;
  readonly sshfs?: FilesTimes;
  /** write and read: throughput ratio ebp/sshfs (higher is better); metadata: time ratio (lower is better). */
  readonly ratios?: { readonly write: number; readonly read: number; readonly metadata: number };
  readonly samples?: { readonly ebp: FilesTimes[]; readonly sshfs: FilesTimes[] };
}

const HOST = '127.0.0.1';

/** The timed jobs; $1 is the mounted folder. Fixed text: the folder is a parameter. */
const SCRIPT = [
  'd=$1 mib=$2',
  'now() { date +%s%N; }',
  't0=$(now); dd if=/dev/zero of="$d/big" bs=1M count="$mib" conv=fsync status=none || exit 3; t1=$(now)',
  'dd if="$d/big" of=/dev/null bs=1M status=none || exit 4; t2=$(now)',
  // The tar's size, counted after cat: a tar that failed part-way would look fast.
  'n=$(tar cf - -C "$d" small | cat | wc -c) || exit 5; t3=$(now)',
  'rm -f "$d/big"',
  'echo "write=$(( (t1 - t0) / 1000000 )) read=$(( (t2 - t1) / 1000000 )) meta=$(( (t3 - t2) / 1000000 )) tar=$n"',
].join('\n');

function parseTimes(text: string, what: string): FilesTimes {
  const match = /write=(\d+) read=(\d+) meta=(\d+) tar=\s*(\d+)/.exec(text);
  if (match === null) throw new Error(`${what}: no timings in its output: ${text.slice(0, 500)}`);
  return { writeMs: Number(match[1]), readMs: Number(match[2]), metadataMs: Number(match[3]), tarBytes: Number(match[4]) };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] ?? 0 : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function medianTimes(samples: readonly FilesTimes[]): FilesTimes {
  return {
    writeMs: median(samples.map((sample) => sample.writeMs)),
    readMs: median(samples.map((sample) => sample.readMs)),
    metadataMs: median(samples.map((sample) => sample.metadataMs)),
    tarBytes: samples[0]?.tarBytes ?? 0,
  };
}

async function waitForText(read: () => string, pattern: RegExp, child: ChildProcess, what: string): Promise<RegExpExecArray> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const match = pattern.exec(read());
    if (match !== null) return match;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not start: ${read().slice(-500)}`);
    await delay(25);
  }
}

function started(argv: readonly string[]): { child: ChildProcess; text: () => string } {
  const [command, ...args] = argv;
  // setpriv --pdeathsig: it dies with this process whatever happens.
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', command ?? 'false', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => { text += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { text += chunk.toString(); });
  child.on('error', () => undefined);
  return { child, text: () => text };
}

export async function benchFiles(options: { root: string; runs: number; megabytes?: number; smallFiles?: number; log: (line: string) => void }): Promise<FilesResult> {
  const megabytes = options.megabytes ?? 200;
  const smallFiles = options.smallFiles ?? 5000;
  const base = { runs: options.runs, megabytes, smallFiles };
  if (process.getuid?.() !== 0) return { ...base, skipped: 'needs root (a private sshd, sandboxes as ebp-sandbox)' };
  for (const program of ['/usr/sbin/sshd', '/usr/bin/sshfs', '/usr/lib/openssh/sftp-server']) {
    if (!existsSync(program)) return { ...base, skipped: `${program} is not installed` };
  }
  const dir = mkdtempSync('/tmp/ebp-bench-files-');
  chmodSync(dir, 0o755);
  const children: ChildProcess[] = [];
  const ebp = join(options.root, 'bin', 'ebp');
  try {
    // The data: one folder, 5,000 small files in it.
    const data = join(dir, 'data');
    mkdirSync(join(data, 'small'), { recursive: true });
    for (let i = 0; i < smallFiles; i += 1) writeFileSync(join(data, 'small', `f${i}.txt`), `${'x'.repeat(200 + (i % 800))}\n`);
    const mount = join(dir, 'mnt');
    mkdirSync(mount);

    // The anchor: a private sshd, root in with a key made here, its stock sftp-server.
    const ssh = join(dir, 'ssh');
    mkdirSync(ssh, { mode: 0o700 });
    must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(ssh, 'host_key')], 'ssh-keygen');
    must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(ssh, 'client_key')], 'ssh-keygen');
    writeFileSync(join(ssh, 'authorized_keys'), readFileSync(join(ssh, 'client_key.pub')));
    if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
    const sshPort = await freePort(HOST);
    writeFileSync(join(ssh, 'sshd_config'), [
      `Port ${sshPort}`, `ListenAddress ${HOST}`, `HostKey ${join(ssh, 'host_key')}`, 'PidFile none', 'UsePAM no',
      `AuthorizedKeysFile ${join(ssh, 'authorized_keys')}`, 'StrictModes no', 'PermitRootLogin prohibit-password', 'AllowUsers root',
      'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'Subsystem sftp /usr/lib/openssh/sftp-server', '',
    ].join('\n'));
    const sshd = started(['/usr/sbin/sshd', '-D', '-e', '-f', join(ssh, 'sshd_config')]);
    children.push(sshd.child);
    await waitForText(sshd.text, /Server listening on/, sshd.child, 'sshd');

    // ebp: a host daemon sharing sh, and a client state it trusts.
    writeFileSync(join(dir, 'host.toml'), 'name = "files-bench"\n[ui]\nenabled = false\n[discovery]\nenabled = false\n[approval]\npolicy = "trusted-only"\n[[extra_apps]]\nid = "sh"\nname = "sh"\nexec = "sh"\n');
    const key = must([process.execPath, ebp, '--state-dir', join(dir, 'B'), 'id', '--public-key'], 'ebp id').trim();
    must([process.execPath, ebp, '--state-dir', join(dir, 'A'), 'trust', '--key', key], 'ebp trust');
    const daemon = started([process.execPath, ...DAEMON_NODE_FLAGS, ebp, '--state-dir', join(dir, 'A'), 'up', '--port', '0', '--listen', HOST, '--config', join(dir, 'host.toml')]);
    children.push(daemon.child);
    const port = Number((await waitForText(daemon.text, /on port (\d+)/, daemon.child, 'ebp up'))[1]);

    // The tar of the same folder made here: each run's must be as long.
    const tarBytes = Number(must(['sh', '-c', 'tar cf - -C "$1" small | wc -c', 'sh', data], 'tar here').trim());
    const checked = (times: FilesTimes, what: string): FilesTimes => {
      if (times.tarBytes !== tarBytes) throw new Error(`${what}: its tar was ${times.tarBytes} bytes, here ${tarBytes}: the metadata job failed part-way`);
      return times;
    };
    const runSshfs = (): FilesTimes => {
      const sshfsOptions = `port=${sshPort},IdentityFile=${join(ssh, 'client_key')},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=error`;
      // The mount lives in a private mount namespace: never in this machine's table.
      const inner = 'sshfs -o "$1" "root@127.0.0.1:$2" "$3" || exit 2; sh -c "$4" sh "$3" "$5"; status=$?; fusermount3 -u "$3"; exit $status';
      const out = must(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', inner, 'sh', sshfsOptions, data, mount, SCRIPT, String(megabytes)], 'sshfs run', { timeoutMs: 120_000 });
      return checked(parseTimes(out, 'sshfs'), 'sshfs');
    };
    const runEbp = (): FilesTimes => {
      const out = must([process.execPath, ebp, '--state-dir', join(dir, 'B'), 'run', '--share', data, `${HOST}:${port}`, 'sh', '-c', SCRIPT, 'sh', '/home/ebp/Shared/data', String(megabytes)], 'ebp run --share', { timeoutMs: 120_000 });
      return checked(parseTimes(out, 'ebp'), 'ebp');
    };

    // One warm-up each, then alternating runs.
    runSshfs();
    runEbp();
    const samples = { ebp: [] as FilesTimes[], sshfs: [] as FilesTimes[] };
    for (let i = 0; i < options.runs; i += 1) {
      samples.sshfs.push(runSshfs());
      samples.ebp.push(runEbp());
      options.log(`files run ${i + 1}/${options.runs}: sshfs ${JSON.stringify(samples.sshfs.at(-1))}, ebp ${JSON.stringify(samples.ebp.at(-1))}`);
    }
    const ebpTimes = medianTimes(samples.ebp);
    const sshfsTimes = medianTimes(samples.sshfs);
    // Ratios are the medians of the per-pair ratios: each pair ran back to back, so load from
    // elsewhere on the machine hits both sides of a pair alike.
    const paired = (pick: (sshfs: FilesTimes, ebp: FilesTimes) => number): number =>
      Math.round(median(samples.sshfs.map((anchor, i) => pick(anchor, samples.ebp[i] ?? anchor))) * 100) / 100;
    return {
      ...base,
      ebp: ebpTimes,
      sshfs: sshfsTimes,
      ratios: {
        write: paired((anchor, ours) => anchor.writeMs / Math.max(ours.writeMs, 1)),
        read: paired((anchor, ours) => anchor.readMs / Math.max(ours.readMs, 1)),
        metadata: paired((anchor, ours) => ours.metadataMs / Math.max(anchor.metadataMs, 1)),
      },
      samples,
    };
  } finally {
    for (const child of children.reverse()) {
      child.kill('SIGTERM');
      await new Promise((resolve) => { if (child.exitCode !== null || child.signalCode !== null) resolve(undefined); else { child.once('close', resolve); setTimeout(resolve, 10_000).unref(); } });
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Rows for bench/run.ts's summary table: | Benchmark | ebp | anchor | ratio | target | |. */
export function filesSummaryRows(result: FilesResult): string[][] {
  if (result.skipped !== undefined || result.ebp === undefined || result.sshfs === undefined || result.ratios === undefined) {
    return [['files (--share vs sshfs)', 'skipped', '', '', '', result.skipped ?? '']];
  }
  const mibs = (ms: number): string => `${Math.round((result.megabytes / (ms / 1000)) * 10) / 10} MiB/s`;
  const ok = (pass: boolean): string => (pass ? 'ok' : 'MISSED');
  const { ebp, sshfs, ratios } = result;
  return [
    [`files: sequential write ${result.megabytes} MiB`, mibs(ebp.writeMs), mibs(sshfs.writeMs), `${ratios.write}x throughput`, `>= ${FILES_TARGETS.write}x`, ok(ratios.write >= FILES_TARGETS.write)],
    [`files: sequential read ${result.megabytes} MiB`, mibs(ebp.readMs), mibs(sshfs.readMs), `${ratios.read}x throughput`, `>= ${FILES_TARGETS.read}x`, ok(ratios.read >= FILES_TARGETS.read)],
    [`files: tar of ${result.smallFiles} small files piped to cat`, `${ebp.metadataMs} ms`, `${sshfs.metadataMs} ms`, `${ratios.metadata}x time`, `<= ${FILES_TARGETS.metadata}x`, ok(ratios.metadata <= FILES_TARGETS.metadata)],
  ];
}
