// Benchmark b: whole commands, each a new process, timed by hyperfine: `ebp sandbox -- true`
// against its anchors `node -e 0` and raw bwrap with ebp's argv, plus firejail and lxc-execute
// for scale. Sandbox tools run as the unprivileged sandbox user where that is how they are used.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { FD } from '../src/sandbox/bwrap-args.js';
import type { SandboxEngine } from '../src/sandbox/engine.js';
import { buildPolicy } from '../src/sandbox/request.js';
import { DAEMON_NODE_FLAGS } from '../src/daemon/node-flags.js';
import { ebpCommand } from './proc.js';
import { rawPlan } from './raw-bwrap.js';
import { summarize, type Summary } from './stats.js';

export interface CommandResult {
  readonly name: string;
  readonly command: string;
  /** Milliseconds, from hyperfine's per-run times of every round. */
  readonly ms: Summary;
  readonly stddevMs: number;
}

export interface Skipped {
  readonly name: string;
  readonly reason: string;
}

export interface CliResult {
  /** Runs per command in all, split over `rounds` hyperfine invocations. */
  readonly runs: number;
  readonly rounds: number;
  readonly warmup: number;
  readonly results: CommandResult[];
  readonly skipped: Skipped[];
  /** ebp median / (node -e 0 median + raw bwrap median). */
  readonly ratioMedian: number | undefined;
  readonly ratioP90: number | undefined;
  readonly notes: string[];
}

function quote(word: string): string {
  return /^[A-Za-z0-9_./:=,+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * ebp's argv for `true` as a stand-alone script: the seccomp program comes from a file on fd 3,
 * the generated /etc files from temp files and the copied host /etc files from the files
 * themselves, each on the descriptor the argv names (as the runner gives them); the shim's ready
 * fd 6 goes to /dev/null, and the cgroup/status handshake (--json-status-fd, --block-fd) is dropped.
 */
function rawScript(engine: SandboxEngine, dir: string, wrapper: readonly string[]): string {
  const policy = buildPolicy({ command: ['true'] }, engine.identity);
  const plan = rawPlan(engine, policy);
  const seccompFile = join(dir, 'seccomp.bpf');
  writeFileSync(seccompFile, engine.seccomp, { mode: 0o644 });
  const redirects = [`${FD.seccomp}<${quote(seccompFile)}`, `${FD.ready}>/dev/null`];
  plan.dataFiles.forEach((content, index) => {
    const file = join(dir, `data-${FD.firstData + index}`);
    writeFileSync(file, content, { mode: 0o644 });
    redirects.push(`${FD.firstData + index}<${quote(file)}`);
  });
  plan.copiedEtc.forEach((name, index) => { redirects.push(`${FD.firstData + plan.dataFiles.length + index}<${quote(`/etc/${name}`)}`); });
  const args: string[] = [];
  const source = plan.args;
  for (let index = 0; index < source.length; index += 1) {
    const word = source[index] ?? '';
    if (word === '--') {
      args.push(...source.slice(index));
      break;
    }
    if (word === '--json-status-fd' || word === '--block-fd') {
      index += 1;
      continue;
    }
    args.push(word);
  }
  const line = ['exec', ...wrapper, engine.bwrap, ...args].map(quote).join(' ');
  // bash: its redirections take descriptors above 9 (dash's stop at 9).
  return `#!/bin/bash\n# raw bwrap with ebp's mounts and seccomp, no cgroup (written by bench/cli.ts)\n${line} ${redirects.join(' ')}\n`;
}

function lxcConfig(): string {
  // The host's root read-only, new uts/ipc/pid/mount/net namespaces (net: loopback only), /proc.
  return [
    'lxc.uts.name = ebp-bench',
    'lxc.rootfs.path = dir:/',
    'lxc.rootfs.options = ro',
    'lxc.net.0.type = empty',
    'lxc.mount.auto = proc:mixed',
    'lxc.apparmor.profile = unconfined',
    'lxc.log.level = ERROR',
    '',
  ].join('\n');
}

/** Run once outside hyperfine: a tool that cannot work here is left out with its reason. */
function tryOnce(argv: readonly string[]): string | undefined {
  const [command, ...args] = argv;
  if (command === undefined) return 'empty command';
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  if (result.error !== undefined) return result.error.message;
  if (result.status !== 0) return `exit status ${String(result.status)}: ${(result.stderr + result.stdout).trim().split('\n').slice(-3).join(' / ')}`;
  return undefined;
}

interface HyperfineJson {
  results: { command: string; times?: number[] }[];
}

export function benchCli(engine: SandboxEngine, options: { root: string; runs: number; warmup: number; rounds: number }): CliResult {
  const dir = mkdtempSync('/tmp/ebp-bench-');
  chmodSync(dir, 0o755); // the sandbox user reads the seccomp and /etc files from here
  const notes: string[] = [];
  const skipped: Skipped[] = [];
  const cleanups: (() => void)[] = [];
  try {
    const isRoot = process.getuid?.() === 0;
    const user = engine.identity.name;
    const dropPrivileges = isRoot ? ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--clear-groups', '--reset-env'] : [];
    const script = join(dir, 'raw-bwrap.sh');
    writeFileSync(script, rawScript(engine, dir, dropPrivileges), { mode: 0o755 });
    const wrapperScript = join(dir, 'wrapper-only.sh');
    writeFileSync(wrapperScript, `#!/bin/sh\n${['exec', ...dropPrivileges, 'true'].map(quote).join(' ')}\n`, { mode: 0o755 });

    // A daemon of its own (state in the temp folder, no discovery, loopback only): with it running,
    // `ebp sandbox` lets the daemon, which holds the engine, set the sandbox up.
    const daemonState = join(dir, 'state');
    const daemon = spawn(process.execPath, [...DAEMON_NODE_FLAGS, join(options.root, 'bin', 'ebp'), '--state-dir', daemonState, 'up', '--no-discovery', '--listen', '127.0.0.1', '--port', '0'], { stdio: 'ignore' });
    cleanups.push(() => daemon.kill('SIGTERM'));
    const socketPath = join(daemonState, 'run', 'control.sock');
    const tick = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; waited < 15_000 && !existsSync(socketPath); waited += 50) Atomics.wait(tick, 0, 0, 50);
    const candidates: { name: string; argv: string[] }[] = [
      { name: 'ebp sandbox -- true', argv: [ebpCommand(options.root), 'sandbox', '--no-daemon', '--', 'true'] },
      ...(existsSync(socketPath) ? [{ name: 'ebp sandbox -- true, daemon running', argv: [ebpCommand(options.root), '--state-dir', daemonState, 'sandbox', '--', 'true'] }] : []),
      { name: 'node -e 0', argv: [process.execPath, '-e', '0'] },
      // Node start-up plus loading ebp's modules, nothing else: the price of the CLI's imports.
      { name: 'ebp --help', argv: [ebpCommand(options.root), '--help'] },
      { name: 'raw bwrap (ebp argv)', argv: ['/bin/bash', script] },
      { name: 'sh + setpriv + true', argv: ['/bin/sh', wrapperScript] },
      { name: 'firejail --noprofile', argv: [...dropPrivileges, 'firejail', '--noprofile', '--quiet', 'true'] },
    ];
    if (isRoot) {
      writeFileSync(join(dir, 'lxc.conf'), lxcConfig());
      candidates.push({ name: 'lxc-execute', argv: ['lxc-execute', '-n', 'ebp-bench', '-P', dir, '-f', join(dir, 'lxc.conf'), '--', '/bin/true'] });
    } else {
      skipped.push({ name: 'lxc-execute', reason: 'needs root here (unprivileged LXC needs subuid maps and a delegated cgroup)' });
    }
    if (!isRoot) notes.push('not root: ebp and raw bwrap run as the current user');
    const usable = candidates.filter((candidate) => {
      const problem = tryOnce(candidate.argv);
      if (problem !== undefined) skipped.push({ name: candidate.name, reason: problem });
      return problem === undefined;
    });
    if (spawnSync('hyperfine', ['--version']).status !== 0) {
      return { runs: options.runs, rounds: options.rounds, warmup: options.warmup, results: [], skipped: [{ name: 'all', reason: 'hyperfine is not installed' }], ratioMedian: undefined, ratioP90: undefined, notes };
    }
    // hyperfine runs all runs of one command, then the next: a burst of load from elsewhere would
    // land on one command only. So the runs are split into rounds, each a full hyperfine run over
    // every command (the order rotated per round), and the per-run times are pooled.
    const rounds = Math.max(1, options.rounds);
    const perRound = Math.ceil(options.runs / rounds);
    const times = new Map<string, number[]>(usable.map((candidate) => [candidate.name, []]));
    for (let round = 0; round < rounds; round += 1) {
      const order = usable.map((_, index) => usable[(index + round) % usable.length]).filter((entry) => entry !== undefined);
      const jsonFile = join(dir, `hyperfine-${round}.json`);
      const hyperfine = spawnSync('hyperfine', [
        '--shell=none', '--style=basic', `--warmup=${options.warmup}`, `--runs=${perRound}`, '--export-json', jsonFile,
        ...order.flatMap((candidate) => ['--command-name', candidate.name, candidate.argv.map(quote).join(' ')]),
      ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
      if (hyperfine.status !== 0) throw new Error(`hyperfine failed: ${hyperfine.stderr}`);
      const parsed = JSON.parse(readFileSync(jsonFile, 'utf8')) as HyperfineJson;
      order.forEach((candidate, index) => {
        times.get(candidate.name)?.push(...(parsed.results[index]?.times ?? []).map((seconds) => seconds * 1000));
      });
    }
    const results: CommandResult[] = usable.map((candidate) => {
      const list = times.get(candidate.name) ?? [];
      const summary = summarize(list);
      const variance = list.reduce((total, value) => total + (value - summary.mean) ** 2, 0) / Math.max(1, list.length - 1);
      return { name: candidate.name, command: candidate.argv.join(' '), ms: summary, stddevMs: Math.sqrt(variance) };
    });
    const find = (name: string): Summary | undefined => results.find((result) => result.name === name)?.ms;
    const ebp = find('ebp sandbox -- true');
    const node = find('node -e 0');
    const raw = find('raw bwrap (ebp argv)');
    const ratio = (pick: (summary: Summary) => number): number | undefined =>
      ebp === undefined || node === undefined || raw === undefined ? undefined : pick(ebp) / (pick(node) + pick(raw));
    const viaDaemon = find('ebp sandbox -- true, daemon running');
    if (viaDaemon !== undefined && node !== undefined && raw !== undefined) {
      notes.push(`with the daemon running, \`ebp sandbox -- true\` takes ${viaDaemon.median.toFixed(1)} ms (median): ${(viaDaemon.median / (node.median + raw.median)).toFixed(2)}x of node -e 0 + raw bwrap (p90 ${(viaDaemon.p90 / (node.p90 + raw.p90)).toFixed(2)}x)`);
    }
    return { runs: perRound * rounds, rounds, warmup: options.warmup, results, skipped, ratioMedian: ratio((s) => s.median), ratioP90: ratio((s) => s.p90), notes };
  } finally {
    for (const cleanup of cleanups) cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
