// Launch benchmarks: `ebp run` against OpenSSH on the same machine, in one run. The anchor is a
// private sshd on 127.0.0.1 (its own host key, config and port) logging in a dedicated user
// `ebp-bench` whose home holds only the stock /etc/skel files. The ebp side is two daemons: host A
// shares `true`, `cat`, `head` and `sh` and trusts B's key; B's daemon is the warm path (the CLI
// hands the launch to it over its control socket, it relays through its pooled connection), and a
// second state folder B2 with B's identity but no daemon is the cold path (the CLI dials A itself).
// A second pair, A0 and B0, runs with EBP_HANDOFF=off: the echo's warm path without the hand-off
// of interactive writes (src/lib/handoff.ts), measured in the same turns.
//
//   1. cold `ebp run A true` (B2) against a fresh `ssh host true`;
//   2. warm `ebp run A true` (through B's daemon) minus `node -e 0`, against `ssh` through a warm
//      ControlMaster;
//   3. keystroke-to-echo latency in a terminal session (bench/pty-echo.py), all four ways;
//   4. bulk throughput, host to client (`head -c N /dev/zero` on the host) and client to host
//      (`sh -c 'cat > /dev/null'` there, N bytes in).
//
// Everything it starts (sshd, the daemons, the ControlMaster, the user, the temp folder) is
// removed at the end, also when a step fails or the run is interrupted.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { DAEMON_NODE_FLAGS } from '../src/daemon/node-flags.js';
import { launchOnPeer, type PeerLaunch } from '../src/cli/peer-access.js';
import type { LaunchSpec } from '../src/cli/run-request.js';
import { launchDirect } from '../src/cli/peer-direct.js';
import { statePaths } from '../src/config/paths.js';
import { callDaemon } from '../src/control/client.js';
import { summarize, type Summary } from './stats.js';
import { descendants } from './system.js';
import { ebpCommand, freePort, must, prepareLoginUser, run } from './proc.js';

export interface LaunchOptions {
  readonly root: string;
  /** Measurements 1 and 2: hyperfine runs per command in all, split over `rounds` invocations. */
  readonly runs: number;
  readonly warmup: number;
  readonly rounds: number;
  /** Measurement 3: timed keystrokes per session, untimed ones before, keystrokes per turn. */
  readonly echoCount: number;
  readonly echoWarmup: number;
  readonly echoBlock: number;
  /** Measurement 4: bytes per transfer, hyperfine runs and warm-up per command. */
  readonly bulkBytes: number;
  readonly bulkRuns: number;
  readonly bulkWarmup: number;
  /** 'warm': only ebp through the daemon against ssh through a ControlMaster (the quick run). */
  readonly bulkPaths: 'all' | 'warm';
  /** Where the time goes: in-process launches (no CLI start-up), each kind this many times. */
  readonly breakdownRuns: number;
  readonly log: (message: string) => void;
}

export interface TimedCommand {
  readonly name: string;
  readonly command: string;
  /** Milliseconds, hyperfine's per-run times of every round pooled. */
  readonly ms: Summary;
  readonly stddevMs: number;
  /** Runs that exited non-zero (hyperfine --ignore-failure; their times are kept), by status. */
  readonly failures: Readonly<Record<string, number>>;
  /** The command's own CPU per run (user + system, hyperfine's means), ms. */
  readonly cpuMs: number;
}

export interface Pair {
  readonly ebp: Summary;
  readonly anchor: Summary;
  readonly ratioMedian: number;
  readonly ratioP90: number;
}

export interface EchoSession {
  readonly name: string;
  /** Keystroke-to-echo, microseconds. */
  readonly us: Summary;
  /** From the client's start to the first echo through its session (ms). */
  readonly readyMs: number;
}

export interface BulkRow {
  readonly name: string;
  readonly path: 'warm' | 'cold';
  readonly side: 'ebp' | 'ssh';
  readonly ms: Summary;
  readonly failures: Readonly<Record<string, number>>;
  /**
   * CPU per run (ms): the client command (hyperfine), ebp's daemons (their own threads, not their
   * children), sshd's processes alive across the runs (the ControlMaster's connection) and the
   * ControlMaster client. Processes that live only within one run (a fresh sshd connection) and
   * the remote command itself are not counted.
   */
  readonly cpu: { readonly client: number; readonly daemonA?: number; readonly daemonB?: number; readonly sshd?: number; readonly master?: number };
  /** Bytes over the median wall time of the whole command (start-up and handshake included). */
  readonly endToEndMBps: number;
  /** Bytes over (median wall time − median of the same path's launch of `true`). */
  readonly transferMBps: number;
}

export interface BulkDirection {
  readonly rows: BulkRow[];
  /** ebp's transfer rate over ssh's, per path (higher is better; target ≥ 0.8). */
  readonly warmRatio: number | undefined;
  readonly coldRatio: number | undefined;
  readonly warmRatioEndToEnd: number | undefined;
  readonly coldRatioEndToEnd: number | undefined;
}

/** The launch path without the CLI's process: ebp's own client code, called in this process. */
export interface Breakdown {
  readonly runs: number;
  /** Warm: launchOnPeer through daemon B until its answer (channel opened on the pooled connection, exec accepted). */
  readonly warmAnswer: Summary;
  /** Warm: … until the exit frame (the sandbox ran `true` on A and is gone). */
  readonly warmTotal: Summary;
  /** `ebp:ping` through daemon B (a query answered by A's SSH server): the same path, no sandbox. */
  readonly warmPing: Summary;
  /** Queries that failed (their time is left out of warmPing). */
  readonly pingFailures: string[];
  /** Cold: launchDirect (identity, known peers, config, TCP, key exchange, auth, exec accepted). */
  readonly coldConnect: Summary;
  /** Cold: from the exec being accepted to the exit status (and the connection closed). */
  readonly coldExecToExit: Summary;
}

export interface LaunchResult {
  /** Why nothing was measured (not root, no sshd...). */
  readonly skipped: string | undefined;
  readonly runs: number;
  readonly rounds: number;
  readonly warmup: number;
  readonly versions: { readonly ssh: string; readonly python: string };
  /** The cipher OpenSSH negotiated (from `ssh -v`). */
  readonly sshCipher: string;
  readonly commands: TimedCommand[];
  readonly breakdown: Breakdown | undefined;
  readonly failed: { readonly name: string; readonly reason: string }[];
  /** 1: cold ebp against fresh ssh (target ≤ 0.8x). */
  readonly cold: Pair | undefined;
  /** 2: warm ebp minus node -e 0 against ssh through a ControlMaster (target ≤ 2x). */
  readonly warm: (Pair & { readonly node: Summary; readonly ebpMinusNodeMedian: number; readonly ebpMinusNodeP90: number }) | undefined;
  readonly echo: {
    readonly count: number;
    readonly sessions: EchoSession[];
    readonly warm: Pair | undefined;
    readonly cold: Pair | undefined;
    /** What-if: the warm path's daemons without the hand-off, against the same anchor. */
    readonly warmNoHandOff: Pair | undefined;
    readonly problem: string | undefined;
  };
  readonly bulk: {
    readonly bytes: number;
    readonly runs: number;
    readonly warmup: number;
    readonly stdout: BulkDirection | undefined;
    readonly stdin: BulkDirection | undefined;
    readonly problem: string | undefined;
  };
  readonly durationS: number;
  readonly notes: string[];
}

export const LAUNCH_TARGETS = { cold: 0.8, warm: 2, echo: 1.2, bulk: 0.8 } as const;

const BENCH_USER = 'ebp-bench';
/** The GECOS of the user this file makes; a user without it is someone else's and is left alone. */
const BENCH_USER_MARK = 'eBrainPool launch benchmark (bench/launch.ts)';
const HOST = '127.0.0.1';

function quote(word: string): string {
  return /^[A-Za-z0-9_./:=,+@-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Waits until `pattern` appears in what `read` returns, or the child exits, or the time runs out. */
async function waitFor(child: ChildProcess, read: () => string, pattern: RegExp, what: string, timeoutMs = 15_000): Promise<RegExpExecArray> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(read());
    if (match !== null) return match;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited (${String(child.exitCode ?? child.signalCode)}): ${read().trim().split('\n').slice(-5).join(' / ')}`);
    if (performance.now() > deadline) throw new Error(`${what} did not start within ${timeoutMs} ms: ${read().trim().split('\n').slice(-5).join(' / ')}`);
    await delay(20);
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Everything this benchmark starts or makes, so that one function can undo all of it. */
class Fixture {
  readonly dir: string;
  readonly ebp: string;
  readonly children: ChildProcess[] = [];
  sshPort = 0;
  peerPort = 0;
  /** Host A0 (hand-off off). */
  noHandOffPort = 0;
  userOurs = false;
  madeRunSshd = false;
  /** The processes whose CPU the bulk transfers account for. */
  readonly pids: { hostA?: number | undefined; clientB?: number | undefined; sshd?: number | undefined } = {};
  #cleaned = false;

  constructor(root: string) {
    this.dir = mkdtempSync('/tmp/ebp-bench-launch-');
    // The bench user reads authorized_keys and its home from here.
    chmodSync(this.dir, 0o755);
    this.ebp = ebpCommand(root);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** A child that dies with this process (setpriv --pdeathsig), its output into files here. */
  start(name: string, argv: readonly string[], env?: NodeJS.ProcessEnv): { child: ChildProcess; out: string; err: string } {
    const out = this.path(`${name}.out`);
    const err = this.path(`${name}.err`);
    const outFd = openSync(out, 'w');
    const errFd = openSync(err, 'w');
    try {
      const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...argv], { stdio: ['ignore', outFd, errFd], env: env ?? process.env });
      child.on('error', () => undefined);
      this.children.push(child);
      return { child, out, err };
    } finally {
      closeSync(outFd);
      closeSync(errFd);
    }
  }

  /** The `ebp` command itself, as a person runs it (ebpCommand: package.json's `bin`). */
  ebpArgs(state: string, ...args: string[]): string[] {
    return [this.ebp, '--state-dir', this.path(state), ...args];
  }

  /** `ebp up`, started as `npm start` and the systemd unit start it: with the daemon's Node options. */
  daemonArgs(state: string, ...args: string[]): string[] {
    return [process.execPath, ...DAEMON_NODE_FLAGS, this.ebp, '--state-dir', this.path(state), 'up', ...args];
  }

  /** The client options of the brief; ssh takes the first value of an option it is given. */
  sshBase(logLevel = 'error'): string[] {
    return [
      'ssh', '-i', this.path('ssh', 'client_key'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', `LogLevel=${logLevel}`, '-o', 'BatchMode=yes', '-p', String(this.sshPort),
    ];
  }

  sshMaster(): string[] {
    return ['-o', 'ControlMaster=auto', '-o', `ControlPath=${this.path('ssh', 'cm')}`, '-o', 'ControlPersist=60'];
  }

  /** Synchronous, idempotent, never throws: safe in 'exit' and signal handlers. */
  cleanUp(): string[] {
    if (this.#cleaned) return [];
    this.#cleaned = true;
    const problems: string[] = [];
    if (this.sshPort !== 0) run([...this.sshBase(), ...this.sshMaster(), '-O', 'exit', `${BENCH_USER}@${HOST}`], { timeoutMs: 5000 });
    // The daemons first (they end their sessions), then sshd with its per-connection children.
    for (const child of [...this.children].reverse()) {
      const pid = child.pid;
      if (pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      const tree = descendants(pid).map((proc) => proc.pid);
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        continue;
      }
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && existsSync(`/proc/${pid}`) && !readText(`/proc/${pid}/stat`).includes(') Z')) spawnSync('sleep', ['0.05']);
      for (const other of [pid, ...tree]) {
        try {
          process.kill(other, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    if (this.userOurs) {
      // The user's last sshd processes may take a moment to go.
      for (let attempt = 0; attempt < 20; attempt += 1) {
        const result = run(['userdel', BENCH_USER]);
        if (result.status === 0 || run(['id', BENCH_USER]).status !== 0) break;
        if (attempt === 19) problems.push(`userdel ${BENCH_USER}: ${result.stderr.trim()}`);
        spawnSync('sleep', ['0.1']);
      }
      if (run(['getent', 'group', BENCH_USER]).status === 0) run(['groupdel', BENCH_USER]);
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch (error) {
      problems.push(`rm ${this.dir}: ${String(error)}`);
    }
    if (this.madeRunSshd) {
      try {
        if (readdirSync('/run/sshd').length === 0) rmdirSync('/run/sshd');
      } catch {
        // leave it
      }
    }
    return problems;
  }
}

const APPS_TOML = `# written by bench/launch.ts
[ui]
enabled = false

[discovery]
enabled = false

[approval]
policy = "trusted-only"

[[extra_apps]]
id = "true"
name = "true"
exec = "true"
terminal = true

[[extra_apps]]
id = "cat"
name = "cat"
exec = "cat"
terminal = true

[[extra_apps]]
id = "head"
name = "head"
exec = "head"

[[extra_apps]]
id = "sh"
name = "sh"
exec = "sh"
`;

const CLIENT_TOML = `# written by bench/launch.ts
[ui]
enabled = false

[discovery]
enabled = false
`;

async function startSshd(fixture: Fixture): Promise<void> {
  if (!existsSync('/run/sshd')) {
    mkdirSync('/run/sshd', { mode: 0o755 });
    fixture.madeRunSshd = true;
  }
  const sshDir = fixture.path('ssh');
  mkdirSync(sshDir, { mode: 0o755 });
  must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'ebp-bench host', '-f', join(sshDir, 'host_key')], 'ssh-keygen (host key)');
  must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'ebp-bench client', '-f', join(sshDir, 'client_key')], 'ssh-keygen (client key)');
  writeFileSync(join(sshDir, 'authorized_keys'), readFileSync(join(sshDir, 'client_key.pub')), { mode: 0o644 });

  // The login user: a stock shell rc (/etc/skel), so that its start-up costs what it costs on a
  // fresh account; root's own ~/.bashrc here loads pyenv and would flatter ebp.
  const home = fixture.path('home');
  const user = prepareLoginUser(BENCH_USER, BENCH_USER_MARK, home);
  fixture.userOurs = user.ours;

  for (let attempt = 0; ; attempt += 1) {
    fixture.sshPort = await freePort(HOST);
    const config = [
      '# written by bench/launch.ts',
      `Port ${fixture.sshPort}`,
      `ListenAddress ${HOST}`,
      `HostKey ${join(sshDir, 'host_key')}`,
      'PidFile none',
      'UsePAM no',
      `AuthorizedKeysFile ${join(sshDir, 'authorized_keys')}`,
      'StrictModes no',
      'PermitRootLogin no',
      `AllowUsers ${BENCH_USER}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PrintMotd no',
      'PrintLastLog no',
      'X11Forwarding no',
      'AcceptEnv LANG LC_*',
      '',
    ].join('\n');
    writeFileSync(join(sshDir, 'sshd_config'), config);
    const sshd = fixture.start(`sshd-${attempt}`, ['/usr/sbin/sshd', '-D', '-e', '-f', join(sshDir, 'sshd_config')]);
    try {
      await waitFor(sshd.child, () => readText(sshd.err), /Server listening on/, 'sshd', 10_000);
      fixture.pids.sshd = sshd.child.pid;
      return;
    } catch (error) {
      // Someone took the port between our probe and sshd's bind: try another.
      if (attempt >= 3 || !/Address already in use|Bind to port/.test(readText(sshd.err))) throw error;
    }
  }
}

/**
 * Host HOST (sharing host.toml's apps, trusting CLIENT's key) and client CLIENT, both `ebp up`,
 * and CLIENT's first launch through its daemon: it learns the host's key (known-peers) and opens
 * its pooled connection. Resolves with the pids and the host's port.
 */
async function startPair(fixture: Fixture, host: string, client: string, env?: NodeJS.ProcessEnv): Promise<{ port: number; hostPid: number | undefined; clientPid: number | undefined }> {
  const key = must(fixture.ebpArgs(client, 'id', '--public-key'), `ebp id (${client})`).trim();
  must(fixture.ebpArgs(host, 'trust', '--key', key, '--name', `bench-${client}`), `ebp trust (${host})`);
  const up = async (state: string, config: string, what: string): Promise<{ pid: number | undefined; port: number }> => {
    const daemon = fixture.start(`daemon-${state}`, fixture.daemonArgs(state, '--port', '0', '--listen', HOST, '--config', fixture.path(config)), env);
    const match = await waitFor(daemon.child, () => readText(daemon.out) + readText(daemon.err), /on port (\d+)/, `ebp up (${what} ${state})`);
    return { pid: daemon.child.pid, port: Number(match[1]) };
  };
  const hostDaemon = await up(host, 'host.toml', 'host');
  const clientDaemon = await up(client, 'client.toml', 'client');
  must(fixture.ebpArgs(client, 'run', `${HOST}:${hostDaemon.port}`, 'true'), `ebp run through daemon ${client}`);
  return { port: hostDaemon.port, hostPid: hostDaemon.pid, clientPid: clientDaemon.pid };
}

async function startEbp(fixture: Fixture): Promise<void> {
  writeFileSync(fixture.path('host.toml'), APPS_TOML);
  writeFileSync(fixture.path('client.toml'), CLIENT_TOML);
  const main = await startPair(fixture, 'A', 'B');
  fixture.peerPort = main.port;
  fixture.pids.hostA = main.hostPid;
  fixture.pids.clientB = main.clientPid;
  // B2 is B's identity and known peers without a daemon: the cold path.
  mkdirSync(fixture.path('B2'), { mode: 0o700 });
  cpSync(fixture.path('B', 'identity'), fixture.path('B2', 'identity'), { recursive: true });
  cpSync(fixture.path('B', 'known-peers.json'), fixture.path('B2', 'known-peers.json'));
  // The what-if pair: A0 and B0 as A and B, with no hand-off.
  fixture.noHandOffPort = (await startPair(fixture, 'A0', 'B0', { ...process.env, EBP_HANDOFF: 'off' })).port;
}

interface HyperfineJson {
  results: { command: string; times?: number[]; exit_codes?: (number | null)[]; user?: number; system?: number }[];
}

interface Candidate {
  readonly name: string;
  readonly argv: readonly string[];
}

/**
 * Each command once, then hyperfine (`--shell=none`) in rounds: every round is one invocation
 * over all commands with their order rotated, and the per-run times are pooled, so that a burst
 * of load from elsewhere does not land on one command only.
 */
function hyperfine(dir: string, tag: string, candidates: readonly Candidate[], options: { runs: number; warmup: number; rounds: number }): { results: TimedCommand[]; failed: { name: string; reason: string }[] } {
  const failed: { name: string; reason: string }[] = [];
  const usable = candidates.filter((candidate) => {
    const result = run(candidate.argv, { timeoutMs: 60_000, discardStdout: true });
    const problem = result.error?.message ?? (result.status === 0 ? undefined : `exit status ${String(result.status)}: ${(result.stderr + result.stdout).trim().split('\n').slice(-3).join(' / ')}`);
    if (problem !== undefined) failed.push({ name: candidate.name, reason: problem });
    return problem === undefined;
  });
  const rounds = Math.max(1, options.rounds);
  const perRound = Math.ceil(options.runs / rounds);
  const times = new Map<string, number[]>(usable.map((candidate) => [candidate.name, []]));
  const failures = new Map<string, Record<string, number>>(usable.map((candidate) => [candidate.name, {}]));
  const cpu = new Map<string, number[]>(usable.map((candidate) => [candidate.name, []]));
  for (let round = 0; round < rounds && usable.length > 0; round += 1) {
    const order = usable.map((_, index) => usable[(index + round) % usable.length]).filter((entry) => entry !== undefined);
    const jsonFile = join(dir, `hyperfine-${tag}-${round}.json`);
    const result = spawnSync('hyperfine', [
      // A run that fails is counted and reported, not allowed to end the whole benchmark.
      '--shell=none', '--style=basic', '--ignore-failure', `--warmup=${options.warmup}`, `--runs=${perRound}`, '--export-json', jsonFile,
      ...order.flatMap((candidate) => ['--command-name', candidate.name, candidate.argv.map(quote).join(' ')]),
    ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 900_000 });
    if (result.status !== 0) throw new Error(`hyperfine failed: ${result.error?.message ?? ''}${result.stderr}`);
    const parsed = JSON.parse(readFileSync(jsonFile, 'utf8')) as HyperfineJson;
    order.forEach((candidate, index) => {
      const entry = parsed.results[index];
      times.get(candidate.name)?.push(...(entry?.times ?? []).map((seconds) => seconds * 1000));
      const counts = failures.get(candidate.name) ?? {};
      for (const code of entry?.exit_codes ?? []) if (code !== 0) counts[String(code)] = (counts[String(code)] ?? 0) + 1;
      cpu.get(candidate.name)?.push(((entry?.user ?? Number.NaN) + (entry?.system ?? Number.NaN)) * 1000);
    });
  }
  const results = usable.map((candidate) => {
    const list = times.get(candidate.name) ?? [];
    const summary = summarize(list);
    const variance = list.reduce((total, value) => total + (value - summary.mean) ** 2, 0) / Math.max(1, list.length - 1);
    return { name: candidate.name, command: candidate.argv.map(quote).join(' '), ms: summary, stddevMs: Math.sqrt(variance), failures: failures.get(candidate.name) ?? {}, cpuMs: mean(cpu.get(candidate.name) ?? []) };
  });
  return { results, failed };
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((total, value) => total + value, 0) / values.length;
}

function pair(ebp: Summary | undefined, anchor: Summary | undefined): Pair | undefined {
  if (ebp === undefined || anchor === undefined) return undefined;
  return { ebp, anchor, ratioMedian: ebp.median / anchor.median, ratioP90: ebp.p90 / anchor.p90 };
}

export const NAMES = {
  cold: 'ebp run A true (cold: no local daemon)',
  ssh: 'ssh host true (fresh connection)',
  warm: 'ebp run A true (warm: through daemon B)',
  master: 'ssh host true (ControlMaster, warm)',
  curve: 'ssh host true (fresh, -o KexAlgorithms=curve25519-sha256)',
  node: 'node -e 0',
  imports: 'ebp run --help (the CLI\'s start-up: its code, no connection)',
} as const;

const ECHO = {
  floor: 'local pty, echoed by its own line discipline (the method\'s floor)',
  warm: 'ebp run A cat (warm: daemon B)',
  noHandOff: 'ebp run A0 cat (warm: daemon B0; both with EBP_HANDOFF=off)',
  master: 'ssh -tt host cat (ControlMaster)',
  cold: 'ebp run A cat (cold: direct)',
  ssh: 'ssh -tt host cat (fresh)',
} as const;

function echoBench(fixture: Fixture, root: string, options: LaunchOptions): LaunchResult['echo'] {
  const peer = `${HOST}:${fixture.peerPort}`;
  const target = `${BENCH_USER}@${HOST}`;
  const sessions = [
    { name: ECHO.warm, argv: fixture.ebpArgs('B', 'run', peer, 'cat') },
    { name: ECHO.noHandOff, argv: ['env', 'EBP_HANDOFF=off', ...fixture.ebpArgs('B0', 'run', `${HOST}:${fixture.noHandOffPort}`, 'cat')] },
    { name: ECHO.master, argv: [...fixture.sshBase(), ...fixture.sshMaster(), '-tt', target, 'cat'] },
    { name: ECHO.cold, argv: fixture.ebpArgs('B2', 'run', peer, 'cat') },
    { name: ECHO.ssh, argv: [...fixture.sshBase(), '-tt', target, 'cat'] },
    // No client at all: `cat` here in a cooked pty; the kernel echoes. What the driver itself costs.
    { name: ECHO.floor, argv: ['cat'], local: true },
  ];
  const result = spawnSync('/usr/bin/python3', [
    join(root, 'bench', 'pty-echo.py'), String(options.echoCount), String(options.echoWarmup), String(options.echoBlock), JSON.stringify(sessions),
  ], { encoding: 'utf8', cwd: fixture.dir, timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error !== undefined || result.status !== 0) {
    return { count: options.echoCount, sessions: [], warm: undefined, cold: undefined, warmNoHandOff: undefined, problem: `pty-echo.py: ${result.error?.message ?? ''}${result.stderr.trim().split('\n').slice(-3).join(' / ')}` };
  }
  const parsed = JSON.parse(result.stdout) as Record<string, { us: number[]; readyMs: number }>;
  const list: EchoSession[] = sessions.map((session) => ({ name: session.name, us: summarize(parsed[session.name]?.us ?? []), readyMs: parsed[session.name]?.readyMs ?? Number.NaN }));
  const find = (name: string): Summary | undefined => list.find((session) => session.name === name)?.us;
  return {
    count: options.echoCount,
    sessions: list,
    warm: pair(find(ECHO.warm), find(ECHO.master)),
    cold: pair(find(ECHO.cold), find(ECHO.ssh)),
    warmNoHandOff: pair(find(ECHO.noHandOff), find(ECHO.master)),
    problem: result.stderr.trim() === '' ? undefined : result.stderr.trim(),
  };
}

function bulkBench(fixture: Fixture, options: LaunchOptions, launchMedians: Readonly<Record<'warm' | 'cold' | 'master' | 'ssh', number | undefined>>): LaunchResult['bulk'] {
  const bytes = options.bulkBytes;
  const peer = `${HOST}:${fixture.peerPort}`;
  const target = `${BENCH_USER}@${HOST}`;
  const input = fixture.path('input.bin');
  // Zeros, as from /dev/zero: neither side compresses (OpenSSH's default, and ssh2's).
  const fd = openSync(input, 'w');
  try {
    const chunk = Buffer.alloc(1024 * 1024);
    for (let written = 0; written < bytes; written += chunk.length) writeFileSync(fd, chunk.subarray(0, Math.min(chunk.length, bytes - written)));
  } finally {
    closeSync(fd);
  }
  const script = (name: string, argv: readonly string[]): string[] => {
    const file = fixture.path(`${name}.sh`);
    writeFileSync(file, `#!/bin/sh\n${['exec', ...argv].map(quote).join(' ')} < ${quote(input)}\n`, { mode: 0o755 });
    return ['/bin/sh', file];
  };
  type Spec = { name: string; path: 'warm' | 'cold'; side: 'ebp' | 'ssh'; argv: string[] };
  const head = ['head', '-c', String(bytes), '/dev/zero'];
  const outSpecs: Spec[] = [
    { name: `ebp run A ${head.join(' ')} (warm: daemon B)`, path: 'warm', side: 'ebp', argv: fixture.ebpArgs('B', 'run', peer, ...head) },
    { name: `ssh host ${head.join(' ')} (ControlMaster)`, path: 'warm', side: 'ssh', argv: [...fixture.sshBase(), ...fixture.sshMaster(), target, ...head] },
    { name: `ebp run A ${head.join(' ')} (cold: direct)`, path: 'cold', side: 'ebp', argv: fixture.ebpArgs('B2', 'run', peer, ...head) },
    { name: `ssh host ${head.join(' ')} (fresh)`, path: 'cold', side: 'ssh', argv: [...fixture.sshBase(), target, ...head] },
  ];
  const sink = 'cat > /dev/null';
  const inSpecs: Spec[] = [
    { name: `ebp run A sh -c '${sink}' < file (warm: daemon B)`, path: 'warm', side: 'ebp', argv: script('in-warm', fixture.ebpArgs('B', 'run', peer, 'sh', '-c', sink)) },
    { name: `ssh host '${sink}' < file (ControlMaster)`, path: 'warm', side: 'ssh', argv: script('in-master', [...fixture.sshBase(), ...fixture.sshMaster(), target, sink]) },
    { name: `ebp run A sh -c '${sink}' < file (cold: direct)`, path: 'cold', side: 'ebp', argv: script('in-cold', fixture.ebpArgs('B2', 'run', peer, 'sh', '-c', sink)) },
    { name: `ssh host '${sink}' < file (fresh)`, path: 'cold', side: 'ssh', argv: script('in-fresh', [...fixture.sshBase(), target, sink]) },
  ];
  const pick = (specs: Spec[]): Spec[] => specs.filter((spec) => options.bulkPaths === 'all' || spec.path === 'warm');
  const problems: string[] = [];
  // The ControlMaster ends 60 s after its last session (ControlPersist=60), which the other
  // commands' runs can outlast: it is primed again before each of its own, and its pid read then.
  let masterPid = Number.NaN;
  const primeMaster = (): void => {
    run([...fixture.sshBase(), ...fixture.sshMaster(), target, 'true']);
    masterPid = Number(/pid=(\d+)/.exec(run([...fixture.sshBase(), ...fixture.sshMaster(), '-O', 'check', target]).stderr)?.[1] ?? Number.NaN);
  };
  const watched = (): Record<'daemonA' | 'daemonB' | 'sshd' | 'master', number> => ({
    daemonA: cpuMsOf([fixture.pids.hostA]),
    daemonB: cpuMsOf([fixture.pids.clientB]),
    sshd: cpuMsOf(fixture.pids.sshd === undefined ? [] : [fixture.pids.sshd, ...descendants(fixture.pids.sshd).map((proc) => proc.pid)]),
    master: cpuMsOf([Number.isNaN(masterPid) ? undefined : masterPid]),
  });
  const direction = (tag: string, specs: Spec[]): BulkDirection | undefined => {
    const chosen = pick(specs);
    const rows: BulkRow[] = [];
    // One hyperfine per command (it runs one command's runs back to back anyway), so that the
    // daemons' CPU can be told apart per command.
    for (const [index, spec] of chosen.entries()) {
      if (spec.side === 'ssh' && spec.path === 'warm') primeMaster();
      const before = watched();
      const { results, failed } = hyperfine(fixture.dir, `${tag}-${index}`, [spec], { runs: options.bulkRuns, warmup: options.bulkWarmup, rounds: 1 });
      const after = watched();
      for (const fail of failed) problems.push(`${fail.name}: ${fail.reason}`);
      const result = results[0];
      if (result === undefined) continue;
      // The check run, the warm-ups and the runs.
      const count = 1 + options.bulkWarmup + result.ms.n;
      const per = (key: keyof typeof before): number => (after[key] - before[key]) / count;
      const cpu = spec.side === 'ebp'
        ? { client: result.cpuMs, daemonA: per('daemonA'), ...(spec.path === 'warm' ? { daemonB: per('daemonB') } : {}) }
        : { client: result.cpuMs, ...(spec.path === 'warm' ? { sshd: per('sshd'), master: per('master') } : {}) };
      const launch = spec.path === 'warm' ? (spec.side === 'ebp' ? launchMedians.warm : launchMedians.master) : (spec.side === 'ebp' ? launchMedians.cold : launchMedians.ssh);
      const seconds = result.ms.median / 1000;
      rows.push({
        name: spec.name, path: spec.path, side: spec.side, ms: result.ms, failures: result.failures, cpu,
        endToEndMBps: bytes / 1e6 / seconds,
        transferMBps: launch === undefined ? Number.NaN : bytes / 1e6 / (seconds - launch / 1000),
      });
    }
    const rate = (path: 'warm' | 'cold', key: 'transferMBps' | 'endToEndMBps'): number | undefined => {
      const ebp = rows.find((row) => row.path === path && row.side === 'ebp')?.[key];
      const ssh = rows.find((row) => row.path === path && row.side === 'ssh')?.[key];
      return ebp === undefined || ssh === undefined ? undefined : ebp / ssh;
    };
    return { rows, warmRatio: rate('warm', 'transferMBps'), coldRatio: rate('cold', 'transferMBps'), warmRatioEndToEnd: rate('warm', 'endToEndMBps'), coldRatioEndToEnd: rate('cold', 'endToEndMBps') };
  };
  const stdout = direction('bulk-out', outSpecs);
  const stdin = direction('bulk-in', inSpecs);
  return { bytes, runs: options.bulkRuns, warmup: options.bulkWarmup, stdout, stdin, problem: problems.length === 0 ? undefined : problems.join('; ') };
}

const CLOCK_TICK_MS = 1000 / Number(run(['getconf', 'CLK_TCK']).stdout.trim() || 100);

/** utime + stime of live processes (their own, not their children's), ms; gone ones count 0. */
function cpuMsOf(pids: readonly (number | undefined)[]): number {
  let ticks = 0;
  for (const pid of pids) {
    if (pid === undefined) continue;
    const stat = readText(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks * CLOCK_TICK_MS;
}

/** Waits for a launched process to end, with stdin closed and its output drained. */
async function finish(launch: PeerLaunch): Promise<void> {
  launch.remote.stdin.end();
  launch.remote.stdout.resume();
  launch.remote.stderr.resume();
  const exit = await launch.remote.exit;
  launch.done();
  if (exit.kind !== 'code' || exit.code !== 0) throw new Error(`in-process launch ended with ${JSON.stringify(exit)}`);
}

/** In-process warm, ping and cold launches, interleaved, so that their costs can be told apart. */
/** Between two launches of the breakdown: about one Node start-up, as between two CLI runs. */
const SPARE_PAUSE_MS = 50;

async function breakdown(fixture: Fixture, runs: number): Promise<Breakdown> {
  const warmPaths = statePaths({ stateDir: fixture.path('B') });
  const coldPaths = statePaths({ stateDir: fixture.path('B2') });
  const spec: LaunchSpec = { peer: `${HOST}:${fixture.peerPort}`, command: ['true'], env: {} };
  const pingFailures: string[] = [];
  const samples = { warmAnswer: [] as number[], warmTotal: [] as number[], warmPing: [] as number[], coldConnect: [] as number[], coldExecToExit: [] as number[] };
  for (let index = -3; index < runs; index += 1) {
    const record = index >= 0;
    // Host A makes the next launch's sandbox after each launch (src/sandbox/spares.ts), in about
    // 15 ms. Launches back to back from one process would time that making; between two CLI
    // runs there is a Node start-up (about 50 ms). This pause stands for it, for both paths.
    await delay(SPARE_PAUSE_MS);
    let began = performance.now();
    const warm = await launchOnPeer(warmPaths, spec);
    const answered = performance.now();
    await finish(warm);
    const ended = performance.now();
    if (record) {
      samples.warmAnswer.push(answered - began);
      samples.warmTotal.push(ended - began);
    }
    began = performance.now();
    try {
      const pong = await callDaemon(warmPaths.runtimeDir, 'query', { peer: spec.peer, query: 'ebp:ping' });
      if (String(pong).trim() !== 'pong') throw new Error(`answered ${String(pong)}`);
      if (record) samples.warmPing.push(performance.now() - began);
    } catch (error) {
      // Seen under load: the answer (data, exit status) arrives in the same read as the channel
      // confirmation, before the client's listeners are on the channel. Counted, not fatal.
      pingFailures.push(error instanceof Error ? error.message : String(error));
    }
    await delay(SPARE_PAUSE_MS);
    began = performance.now();
    const cold = await launchDirect(coldPaths, spec);
    const connected = performance.now();
    await finish(cold);
    if (record) {
      samples.coldConnect.push(connected - began);
      samples.coldExecToExit.push(performance.now() - connected);
    }
  }
  // Let the last connection's close reach A before this process blocks in spawnSync for minutes
  // (its event loop stopped, A would time the connection out after 3 × 15 s of silence).
  await delay(300);
  return {
    runs,
    pingFailures,
    warmAnswer: summarize(samples.warmAnswer),
    warmTotal: summarize(samples.warmTotal),
    warmPing: summarize(samples.warmPing),
    coldConnect: summarize(samples.coldConnect),
    coldExecToExit: summarize(samples.coldExecToExit),
  };
}

function emptyResult(skipped: string, options: LaunchOptions): LaunchResult {
  return {
    skipped, runs: options.runs, rounds: options.rounds, warmup: options.warmup, versions: { ssh: '', python: '' }, sshCipher: '',
    commands: [], breakdown: undefined, failed: [], cold: undefined, warm: undefined,
    echo: { count: 0, sessions: [], warm: undefined, cold: undefined, warmNoHandOff: undefined, problem: skipped },
    bulk: { bytes: options.bulkBytes, runs: 0, warmup: 0, stdout: undefined, stdin: undefined, problem: skipped },
    durationS: 0, notes: [],
  };
}

export async function benchLaunch(options: LaunchOptions): Promise<LaunchResult> {
  const began = performance.now();
  if (process.getuid?.() !== 0) return emptyResult('needs root (a private sshd, a login user for it)', options);
  for (const tool of [['/usr/sbin/sshd', '-V'], ['ssh', '-V'], ['hyperfine', '--version'], ['setpriv', '--version'], ['useradd', '--help']]) {
    const result = run(tool);
    if (result.error !== undefined) return emptyResult(`${tool[0] ?? ''} is not available: ${result.error.message}`, options);
  }
  const fixture = new Fixture(options.root);
  const onExit = (): void => { fixture.cleanUp(); };
  const onSignal = (signal: NodeJS.Signals): void => {
    fixture.cleanUp();
    process.kill(process.pid, signal);
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const notes: string[] = [];
  try {
    options.log(`launch: private sshd, user ${BENCH_USER}, ebp daemons A (host) and B (client) in ${fixture.dir}`);
    await startSshd(fixture);
    await startEbp(fixture);
    const peer = `${HOST}:${fixture.peerPort}`;
    const target = `${BENCH_USER}@${HOST}`;
    const verbose = run([...fixture.sshBase('debug1'), target, 'true']);
    const sshCipher = /kex: server->client cipher: (\S+)/.exec(verbose.stderr)?.[1] ?? 'unknown';
    // Prime the ControlMaster: the first call opens it, later ones only open a channel on it.
    must([...fixture.sshBase(), ...fixture.sshMaster(), target, 'true'], 'ssh (ControlMaster priming)');
    const versions = { ssh: run(['ssh', '-V']).stderr.trim(), python: run(['/usr/bin/python3', '--version']).stdout.trim() };

    options.log(`launch 1+2: cold and warm \`ebp run\` against fresh ssh and ssh through a ControlMaster, node -e 0: ${options.runs} runs each in ${options.rounds} rounds (warm-up ${options.warmup} per round)`);
    const { results, failed } = hyperfine(fixture.dir, 'launch', [
      { name: NAMES.cold, argv: fixture.ebpArgs('B2', 'run', peer, 'true') },
      { name: NAMES.ssh, argv: [...fixture.sshBase(), target, 'true'] },
      { name: NAMES.warm, argv: fixture.ebpArgs('B', 'run', peer, 'true') },
      { name: NAMES.master, argv: [...fixture.sshBase(), ...fixture.sshMaster(), target, 'true'] },
      // Diagnostic: OpenSSH 9.2's default key exchange (sntrup761x25519) costs its client tens of
      // ms of CPU; ssh2, and so ebp, use curve25519.
      { name: NAMES.curve, argv: [...fixture.sshBase(), '-o', 'KexAlgorithms=curve25519-sha256', target, 'true'] },
      { name: NAMES.node, argv: [process.execPath, '-e', '0'] },
      // Diagnostic: the command as run above, up to the point where it would connect: its entry,
      // the run command's bundle with its code cache, argument parsing.
      { name: NAMES.imports, argv: fixture.ebpArgs('B', 'run', '--help') },
    ], options);
    const find = (name: string): Summary | undefined => results.find((result) => result.name === name)?.ms;
    const cold = pair(find(NAMES.cold), find(NAMES.ssh));
    const warmEbp = find(NAMES.warm);
    const node = find(NAMES.node);
    const master = find(NAMES.master);
    let warm: LaunchResult['warm'];
    if (warmEbp !== undefined && node !== undefined && master !== undefined) {
      const minusNode = { median: warmEbp.median - node.median, p90: warmEbp.p90 - node.p90 };
      warm = {
        ebp: warmEbp, anchor: master, node,
        ebpMinusNodeMedian: minusNode.median, ebpMinusNodeP90: minusNode.p90,
        ratioMedian: minusNode.median / master.median, ratioP90: minusNode.p90 / master.p90,
      };
    }

    // Host A makes the next sandbox ahead after each launch (src/sandbox/spares.ts): how many of
    // the launches so far (warm-ups, both paths) found theirs made.
    const startedLines = readText(fixture.path('daemon-A.err')).split('\n').filter((line) => line.includes(' session-started '));
    notes.push(`host A ran ${startedLines.filter((line) => / spare=true/.test(line)).length} of the ${startedLines.length} launches of sets 1 and 2 (warm-ups included, both paths) in a sandbox made ahead (spare)`);

    let timeline: Breakdown | undefined;
    try {
      options.log(`launch: where the time goes, ${options.breakdownRuns} in-process launches of each kind`);
      timeline = await breakdown(fixture, options.breakdownRuns);
    } catch (error) {
      notes.push(`in-process breakdown failed: ${error instanceof Error ? error.message : String(error)}`);
    }

    options.log(`launch 3: keystroke-to-echo in a terminal, ebp and ssh sessions open at once, ${options.echoCount} keystrokes each in turns of ${options.echoBlock}`);
    const echo = echoBench(fixture, options.root, options);
    if (echo.problem !== undefined) options.log(`launch 3: ${echo.problem}`);

    const mib = options.bulkBytes / 1024 ** 2;
    options.log(`launch 4: bulk ${mib} MiB each way, ${options.bulkPaths === 'all' ? 'warm and cold paths' : 'warm path only'}, ${options.bulkRuns} runs each (warm-up ${options.bulkWarmup})`);
    const bulk = bulkBench(fixture, options, {
      warm: warmEbp?.median, master: master?.median, cold: find(NAMES.cold)?.median, ssh: find(NAMES.ssh)?.median,
    });
    if (bulk.problem !== undefined) options.log(`launch 4: ${bulk.problem}`);

    const daemonErrors = ['daemon-A', 'daemon-B'].flatMap((name) => readText(fixture.path(`${name}.err`)).split('\n').filter((line) => /error|refused|broken/i.test(line)).slice(0, 3).map((line) => `${name}: ${line}`));
    notes.push(...daemonErrors);
    return {
      skipped: undefined, runs: Math.ceil(options.runs / Math.max(1, options.rounds)) * Math.max(1, options.rounds), rounds: options.rounds, warmup: options.warmup,
      versions, sshCipher, commands: results, breakdown: timeline, failed, cold, warm, echo, bulk,
      durationS: Math.round((performance.now() - began) / 100) / 10, notes,
    };
  } finally {
    // The daemons' and sshd's logs, for a look after the run (bench/results is git-ignored).
    try {
      const results = join(options.root, 'bench', 'results');
      mkdirSync(results, { recursive: true });
      for (const name of ['daemon-A.err', 'daemon-B.err']) cpSync(fixture.path(name), join(results, `launch-${name.replace('.err', '.log')}`));
    } catch {
      // nothing to keep
    }
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    const problems = fixture.cleanUp();
    for (const problem of problems) options.log(`launch clean-up: ${problem}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const ms = (value: number): string => `${value.toFixed(1)} ms`;
const us = (value: number): string => `${value.toFixed(0)} µs`;
const x = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? 'n/a' : `${value.toFixed(2)}x`);
const mbps = (value: number): string => (Number.isNaN(value) ? 'n/a' : `${value.toFixed(0)} MB/s`);
const verdict = (ok: boolean | undefined): string => (ok === undefined ? 'n/a' : ok ? 'met' : 'MISSED');

function cpuText(row: BulkRow): string {
  const { cpu } = row;
  const value = (number: number | undefined): string => (number === undefined || Number.isNaN(number) ? '–' : number.toFixed(0));
  if (row.side === 'ebp') return `${value(cpu.client)} · ${row.path === 'warm' ? `daemon B ${value(cpu.daemonB)}` : '–'} · daemon A ${value(cpu.daemonA)} ms`;
  return row.path === 'warm' ? `${value(cpu.client)} · master ${value(cpu.master)} · sshd ${value(cpu.sshd)} ms` : `${value(cpu.client)} · – · (per-run sshd, not counted) ms`;
}

function failedText(command: { readonly failures: Readonly<Record<string, number>> }): string {
  const entries = Object.entries(command.failures);
  return entries.length === 0 ? '0' : entries.map(([code, count]) => `${count} × status ${code}`).join(', ');
}

/** Rows for the summary table (same columns as bench/run.ts's: benchmark, ebp, anchor, ratio, target, verdict). */
export function launchSummaryRows(result: LaunchResult): string[][] {
  if (result.skipped !== undefined) return [['launch benchmarks', `left out: ${result.skipped}`, '', '', '', '']];
  const rows: string[][] = [];
  const runsText = `hyperfine, ${result.runs} runs in ${result.rounds} rounds`;
  const { cold, warm, echo, bulk } = result;
  const T = LAUNCH_TARGETS;
  if (cold !== undefined) {
    rows.push([`1. cold \`ebp run A true\` (no local daemon) vs fresh \`ssh host true\`, median (${runsText})`, ms(cold.ebp.median), `ssh ${ms(cold.anchor.median)}`, x(cold.ratioMedian), `≤ ${T.cold}x`, verdict(cold.ratioMedian <= T.cold)]);
    rows.push(['1. same, p90', ms(cold.ebp.p90), `ssh ${ms(cold.anchor.p90)}`, x(cold.ratioP90), `≤ ${T.cold}x`, verdict(cold.ratioP90 <= T.cold)]);
  }
  if (warm !== undefined) {
    rows.push([
      `2. warm \`ebp run A true\` (through daemon B) − \`node -e 0\` vs ssh through a warm ControlMaster, median`,
      `${ms(warm.ebp.median)} − ${ms(warm.node.median)} = ${ms(warm.ebpMinusNodeMedian)}`, `ssh -o ControlMaster ${ms(warm.anchor.median)}`,
      x(warm.ratioMedian), `≤ ${T.warm}x`, verdict(warm.ratioMedian <= T.warm),
    ]);
    rows.push(['2. same, p90', `${ms(warm.ebp.p90)} − ${ms(warm.node.p90)} = ${ms(warm.ebpMinusNodeP90)}`, ms(warm.anchor.p90), x(warm.ratioP90), `≤ ${T.warm}x`, verdict(warm.ratioP90 <= T.warm)]);
  }
  const echoRow = (label: string, value: Pair | undefined, anchorName: string): void => {
    if (value === undefined) return;
    rows.push([`3. keystroke → echo, ${label}, median (${echo.count} keystrokes)`, us(value.ebp.median), `${anchorName} ${us(value.anchor.median)}`, x(value.ratioMedian), `≤ ${T.echo}x`, verdict(value.ratioMedian <= T.echo)]);
    rows.push([`3. same, p90`, us(value.ebp.p90), `${anchorName} ${us(value.anchor.p90)}`, x(value.ratioP90), `≤ ${T.echo}x`, verdict(value.ratioP90 <= T.echo)]);
  };
  echoRow('warm: ebp through daemon B', echo.warm, 'ssh -tt, ControlMaster');
  echoRow('cold: ebp dialling directly', echo.cold, 'ssh -tt, fresh');
  if (echo.warmNoHandOff !== undefined) {
    // Not a target: what the hand-off of interactive writes (src/lib/handoff.ts) buys, same turns.
    const off = echo.warmNoHandOff;
    rows.push([`3. what-if, warm without the hand-off (EBP_HANDOFF=off), median`, us(off.ebp.median), `ssh -tt, ControlMaster ${us(off.anchor.median)}`, x(off.ratioMedian), '–', '']);
  }
  if (echo.sessions.length === 0 && echo.problem !== undefined) rows.push(['3. keystroke → echo', `left out: ${echo.problem}`, '', '', '', '']);
  const mib = `${bulk.bytes / 1024 ** 2} MiB`;
  const bulkRows = (label: string, direction: BulkDirection | undefined): void => {
    if (direction === undefined) return;
    for (const path of ['warm', 'cold'] as const) {
      const ebp = direction.rows.find((row) => row.path === path && row.side === 'ebp');
      const ssh = direction.rows.find((row) => row.path === path && row.side === 'ssh');
      const ratio = path === 'warm' ? direction.warmRatio : direction.coldRatio;
      if (ebp === undefined || ssh === undefined) continue;
      const anchorName = path === 'warm' ? 'ssh, ControlMaster' : 'ssh, fresh';
      rows.push([
        `4. ${label} ${mib}, ${path === 'warm' ? 'warm: through daemon B' : 'cold: direct'}, transfer rate (median; launch of \`true\` subtracted)`,
        mbps(ebp.transferMBps), `${anchorName} ${mbps(ssh.transferMBps)}`, x(ratio), `≥ ${T.bulk}x`, verdict(ratio === undefined ? undefined : ratio >= T.bulk),
      ]);
    }
  };
  bulkRows('host → client (`head -c` on the host, to /dev/null)', bulk.stdout);
  bulkRows('client → host (file on stdin, `cat > /dev/null` on the host)', bulk.stdin);
  return rows;
}

/** The detail sections below the summary table. */
export function launchDetail(result: LaunchResult): string {
  if (result.skipped !== undefined) return `Launch benchmarks left out: ${result.skipped}.`;
  const lines: string[] = [];
  lines.push(`Launch commands (hyperfine \`-N\`, ${result.runs} runs each in ${result.rounds} rounds, warm-up ${result.warmup} per round; ${result.versions.ssh}, cipher ${result.sshCipher}):`);
  lines.push('');
  lines.push('| Command | median | p90 | mean ± sd | min | failed runs |');
  lines.push('|---|---|---|---|---|---|');
  for (const command of result.commands) lines.push(`| ${command.name} | ${ms(command.ms.median)} | ${ms(command.ms.p90)} | ${command.ms.mean.toFixed(1)} ± ${command.stddevMs.toFixed(1)} ms | ${ms(command.ms.min)} | ${failedText(command)} |`);
  for (const fail of result.failed) lines.push(`| ${fail.name} | left out: ${fail.reason} | | | | |`);
  lines.push('');
  const imports = result.commands.find((command) => command.name === NAMES.imports)?.ms;
  const node = result.commands.find((command) => command.name === NAMES.node)?.ms;
  const split = result.breakdown;
  if (split !== undefined) {
    lines.push(`Where the launch time goes: ebp's client code called in this process (no CLI start-up), ${split.runs} runs of each, interleaved, ${SPARE_PAUSE_MS} ms apart (medians / p90):`);
    lines.push('');
    lines.push('| step | median | p90 |');
    lines.push('|---|---|---|');
    const step = (name: string, summary: Summary): void => { lines.push(`| ${name} | ${ms(summary.median)} | ${ms(summary.p90)} |`); };
    if (imports !== undefined && node !== undefined) lines.push(`| CLI start-up beyond Node: \`ebp run --help\` − \`node -e 0\` (hyperfine, the two commands above) | ${ms(imports.median - node.median)} | ${ms(imports.p90 - node.p90)} |`);
    step('warm: control socket → daemon B → channel on the pooled connection → exec accepted by A', split.warmAnswer);
    step('warm: … → sandbox on A runs `true` → exit frame back (total)', split.warmTotal);
    step(`warm: the same path with the \`ebp:ping\` query instead of a sandbox (total${split.pingFailures.length === 0 ? '' : `; ${split.pingFailures.length} of ${split.runs + 3} failed: ${split.pingFailures[0] ?? ''}`})`, split.warmPing);
    step('cold: read identity/known peers/config, TCP, key exchange, auth, exec accepted', split.coldConnect);
    step('cold: exec accepted → sandbox runs `true` → exit status, connection closed', split.coldExecToExit);
    lines.push('');
  }
  if (result.echo.sessions.length > 0) {
    lines.push(`Keystroke → echo (${result.echo.count} timed keystrokes per session after a warm-up; the sessions open at once, measured in turns):`);
    lines.push('');
    lines.push('| Session | median | p90 | mean | min | max | client start → first echo |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const session of result.echo.sessions) lines.push(`| ${session.name} | ${us(session.us.median)} | ${us(session.us.p90)} | ${us(session.us.mean)} | ${us(session.us.min)} | ${us(session.us.max)} | ${ms(session.readyMs)} |`);
    lines.push('');
  }
  for (const [label, direction] of [['host → client', result.bulk.stdout], ['client → host', result.bulk.stdin]] as const) {
    if (direction === undefined || direction.rows.length === 0) continue;
    lines.push(`Bulk ${label}, ${result.bulk.bytes / 1024 ** 2} MiB (hyperfine, ${result.bulk.runs} runs, warm-up ${result.bulk.warmup}; MB = 10⁶ bytes):`);
    lines.push('');
    lines.push('| Command | median | p90 | end to end | transfer (launch subtracted) | CPU per run: client · relay · host side | failed runs |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const row of direction.rows) lines.push(`| ${row.name} | ${ms(row.ms.median)} | ${ms(row.ms.p90)} | ${mbps(row.endToEndMBps)} | ${mbps(row.transferMBps)} | ${cpuText(row)} | ${failedText(row)} |`);
    lines.push('');
    lines.push(`End-to-end ratios (ebp / ssh): warm ${x(direction.warmRatioEndToEnd)}, cold ${x(direction.coldRatioEndToEnd)}.`);
    lines.push('');
  }
  if (result.bulk.problem !== undefined) lines.push(`Bulk: ${result.bulk.problem}`, '');
  for (const note of result.notes) lines.push(`- ${note}`);
  return lines.join('\n').trimEnd();
}
