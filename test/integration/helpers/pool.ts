// Helpers for the launch integration tests: real `ebp up` daemons on 127.0.0.1 (each with its own
// temporary state folder and a free port), clients that are only a state folder (the CLI dials the
// peer itself) or a state folder with a daemon (launches are relayed), and probes that read the
// host directly: processes, file descriptors, cgroup folders. Every process started here is
// stopped by `poolCleanup` (register it with `after`), and killed outright if the test process
// exits first.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { PendingRequest, SessionView } from '../../../src/lib/views.js';
import { DAEMON_NODE_FLAGS } from '../../../src/daemon/node-flags.js';
import { PREPARED_SHELL } from '../../../src/sandbox/bwrap-args.js';
import { EBP, hostProcesses, ROOT, sandboxHostUser, startEbp, type HostProcess, type RunOptions, type RunResult, type Started } from './ebp.js';

export { EBP, ROOT };
export const IN_TERMINAL = join(ROOT, 'test', 'fixtures', 'in-terminal.py');
export const LOOPBACK = '127.0.0.1';

// ---------------------------------------------------------------------------------------------
// Cleanup registry.

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const stoppers = new Set<() => Promise<void>>();

process.once('exit', () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

function track(child: ChildProcess): void {
  children.add(child);
  child.once('close', () => children.delete(child));
}

/** Stops every daemon (SIGTERM, awaited), kills every other process started here, removes temp folders. */
export async function poolCleanup(): Promise<void> {
  await Promise.all([...stoppers].map((stop) => stop().catch(() => undefined)));
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await delay(50);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

let root: string | undefined;

/** This test file's private temporary folder (made on first use, removed by poolCleanup). */
export function tempRoot(): string {
  if (root === undefined) {
    root = mkdtempSync(join(tmpdir(), 'ebp-lt-'));
    tempDirs.add(root);
  }
  return root;
}

/** A fresh folder under the temp root. */
export function tempDir(label: string): string {
  const dir = join(tempRoot(), `${label}-${randomBytes(3).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The environment for every ebp we start: ours, without a state folder that would override --state-dir. */
export function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env['EBP_STATE_DIR'];
  return env;
}

// ---------------------------------------------------------------------------------------------
// Configuration.

export interface AppSpec {
  readonly id: string;
  readonly name: string;
  readonly exec: string;
  readonly terminal?: boolean;
}

/** Prints its arguments as a JSON list: one element per argv word, exactly as received. */
export const ARGV_APP: AppSpec = { id: 'argv', name: 'Argv', exec: 'python3 -c "import json,sys; print(json.dumps(sys.argv[1:]))"' };

/** The apps every test host shares: plain programs from /usr/bin, named by what they are. */
export const STANDARD_APPS: readonly AppSpec[] = [
  { id: 'echo', name: 'Echo', exec: 'echo' },
  { id: 'sh', name: 'Shell', exec: 'sh', terminal: true },
  { id: 'cat', name: 'Cat', exec: 'cat' },
  { id: 'sleep', name: 'Sleep', exec: 'sleep' },
  { id: 'env', name: 'Env', exec: 'env' },
  { id: 'true', name: 'True', exec: 'true' },
  ARGV_APP,
];

export interface HostConfig {
  readonly name: string;
  readonly policy?: 'ask' | 'trusted-only' | 'open';
  readonly timeout?: string;
  readonly rateLimit?: number;
  readonly apps?: readonly AppSpec[];
}

/** TOML text (strings written as JSON strings, which TOML's basic strings accept). */
export function hostConfig(config: HostConfig): string {
  const q = (text: string): string => JSON.stringify(text);
  const lines = [`name = ${q(config.name)}`, '[ui]', 'enabled = false', '[discovery]', 'enabled = false', '[approval]'];
  lines.push(`policy = ${q(config.policy ?? 'ask')}`);
  lines.push(`timeout = ${q(config.timeout ?? '60s')}`);
  if (config.rateLimit !== undefined) lines.push(`rate_limit = ${config.rateLimit}`);
  for (const app of config.apps ?? STANDARD_APPS) {
    lines.push('[[extra_apps]]', `id = ${q(app.id)}`, `name = ${q(app.name)}`, `exec = ${q(app.exec)}`, `terminal = ${app.terminal === true}`);
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Daemons.

export interface DaemonOptions {
  readonly label: string;
  /** TOML text; default: hostConfig({ name: label }). */
  readonly config?: string;
  /** Reuse a state folder (a restart); default a fresh one. */
  readonly stateDir?: string;
  /** Default 0: a free port. */
  readonly port?: number;
  /** Extra environment for the daemon. */
  readonly env?: NodeJS.ProcessEnv;
  readonly startTimeoutMs?: number;
}

export interface PoolDaemon {
  readonly label: string;
  readonly stateDir: string;
  readonly configFile: string;
  readonly port: number;
  /** "127.0.0.1:PORT", what `ebp run` takes. */
  readonly endpoint: string;
  readonly fingerprint: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything the daemon logged on stderr so far. */
  log(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for the exit (SIGKILL after `graceMs`). Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

const STARTED = /on port (\d+) \((SHA256:[A-Za-z0-9+/]+)\)/;

export async function startDaemon(options: DaemonOptions): Promise<PoolDaemon> {
  const stateDir = options.stateDir ?? tempDir(options.label);
  const configFile = join(stateDir, `${options.label}.toml`);
  if (options.config !== undefined || options.stateDir === undefined) writeFileSync(configFile, options.config ?? hostConfig({ name: options.label }));
  const args = [EBP, '--state-dir', stateDir, 'up', '--port', String(options.port ?? 0), '--listen', LOOPBACK, '--config', configFile];
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: baseEnv(options.env) });
  track(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (out += chunk));
  child.stderr.on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => { resolve({ code, signal }); });
  });
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const deadline = performance.now() + timeoutMs;
  let match: RegExpExecArray | null;
  for (;;) {
    match = STARTED.exec(out);
    if (match !== null) break;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`daemon ${options.label} exited (${String(child.exitCode)}) before it started\nstdout: ${out}\nstderr: ${err}`);
    }
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`daemon ${options.label} did not start in ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`);
    }
    await delay(25);
  }
  const port = Number(match[1]);
  const pid = child.pid ?? -1;
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 10_000): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      stoppers.delete(stop);
    })();
    return stopping;
  };
  stoppers.add(stop);
  return {
    label: options.label,
    stateDir,
    configFile,
    port,
    endpoint: `${LOOPBACK}:${port}`,
    fingerprint: match[2] ?? '',
    pid,
    child,
    log: () => err,
    exited,
    stop,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      stoppers.delete(stop);
    },
  };
}

/** The machines of most launch tests: a host, a client with a daemon of its own, one without. */
export interface LaunchPair {
  /** Host A: trusted-only, the standard apps. */
  readonly hostA: PoolDaemon;
  /** Client B's daemon (no apps of its own): its launches are relayed. */
  readonly relayB: PoolDaemon;
  /** Client C: a state folder only, so the CLI dials A itself. */
  readonly direct: string;
}

/** Starts A and B (`env`: extra environment for each daemon) and has A trust B and C. */
export async function startLaunchPair(env: { readonly a?: NodeJS.ProcessEnv; readonly b?: NodeJS.ProcessEnv } = {}): Promise<LaunchPair> {
  const [hostA, relayB] = await Promise.all([
    startDaemon({ label: 'A', config: hostConfig({ name: 'alpha', policy: 'trusted-only' }), ...(env.a === undefined ? {} : { env: env.a }) }),
    startDaemon({ label: 'B', config: hostConfig({ name: 'beta', apps: [] }), ...(env.b === undefined ? {} : { env: env.b }) }),
  ]);
  const direct = clientDir('C');
  await trustClient(hostA, direct);
  await trustClient(hostA, relayB.stateDir);
  return { hostA, relayB, direct };
}

// ---------------------------------------------------------------------------------------------
// The CLI.

/** Starts `ebp --state-dir DIR ARGS...` (tracked for cleanup). See ebp.ts for `input`. */
export function startIn(stateDir: string, args: readonly string[], options: RunOptions = {}): Started {
  const started = startEbp(['--state-dir', stateDir, ...args], { ...options, env: options.env ?? baseEnv() });
  track(started.child);
  return started;
}

/** Runs `ebp --state-dir DIR ARGS...` to its end. */
export function ebpIn(stateDir: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const started = startIn(stateDir, args, options);
  if (options.input !== undefined) started.child.stdin?.end();
  return started.done;
}

/** Like ebpIn, but fails (with everything printed) unless ebp exits 0. */
export async function ebpOk(stateDir: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await ebpIn(stateDir, args, options);
  assert.equal(result.code, 0, `ebp ${args.join(' ')} exited ${String(result.code)}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result;
}

/** Everything a result printed, for assertion messages. */
export function shown(result: RunResult): string {
  return `exit ${String(result.code)} (signal ${String(result.signal)}) after ${Math.round(result.ms)} ms\nstdout: ${JSON.stringify(result.stdout.slice(0, 2000))}\nstderr: ${JSON.stringify(result.stderr.slice(0, 2000))}`;
}

/** A client: only a state folder (no daemon), so the CLI dials peers itself. */
export function clientDir(label: string): string {
  return tempDir(label);
}

export async function fingerprintOf(stateDir: string): Promise<string> {
  const result = await ebpOk(stateDir, ['id', '--json']);
  return (JSON.parse(result.stdout) as { id: string }).id;
}

export async function publicKeyOf(stateDir: string): Promise<string> {
  return (await ebpOk(stateDir, ['id', '--public-key'])).stdout.trim();
}

/** `ebp trust --key "$(ebp --state-dir CLIENT id --public-key)"` on the host. */
export async function trustClient(host: PoolDaemon, clientStateDir: string): Promise<string> {
  await ebpOk(host.stateDir, ['trust', '--key', await publicKeyOf(clientStateDir)]);
  return fingerprintOf(clientStateDir);
}

export async function pendingRequests(host: PoolDaemon): Promise<PendingRequest[]> {
  return JSON.parse((await ebpOk(host.stateDir, ['requests', '--json'])).stdout) as PendingRequest[];
}

/** Polls `ebp requests --json` until a request from `peerId` shows up. */
export async function waitForRequest(host: PoolDaemon, peerId: string, timeoutMs = 15_000): Promise<PendingRequest> {
  return waitUntil(async () => (await pendingRequests(host)).find((request) => request.peerId === peerId), timeoutMs, `a pending request from ${peerId} on ${host.label}`);
}

export async function sessionsOf(host: PoolDaemon): Promise<SessionView[]> {
  return JSON.parse((await ebpOk(host.stateDir, ['sessions', '--json'])).stdout) as SessionView[];
}

/** Polls `probe` until it returns something other than undefined/false. */
export async function waitUntil<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, what: string, intervalMs = 50): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

/** A word no other test or engineer uses: to find our own sandbox processes among everyone's. */
export function marker(): string {
  return `${Date.now() % 100000}${randomBytes(2).readUInt16BE(0) % 1000}`;
}

// ---------------------------------------------------------------------------------------------
// Host probes (read /proc and /sys directly, never through ebp).

/** Host processes of the sandbox uid whose command line contains `text`. */
export function sandboxProcessesWith(text: string): HostProcess[] {
  const { uid } = sandboxHostUser();
  return hostProcesses().filter((p) => p.uid === uid && p.argv.join(' ').includes(text));
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}

/** Every live process below `rootPid` (children, grandchildren ...). */
export function descendants(rootPid: number): HostProcess[] {
  const all = hostProcesses();
  const parent = new Map(all.map((p) => [p.pid, parentOf(p.pid)]));
  return all.filter((p) => {
    let current = parent.get(p.pid);
    for (let hops = 0; current !== undefined && current > 1 && hops < 64; hops += 1) {
      if (current === rootPid) return true;
      current = parent.get(current) ?? parentOf(current);
    }
    return false;
  });
}

/** Processes of the sandbox uid below a daemon. */
export function sandboxProcessesUnder(daemonPid: number): HostProcess[] {
  const { uid } = sandboxHostUser();
  return descendants(daemonPid).filter((p) => p.uid === uid);
}

/**
 * The sandboxes made ahead (sandbox/spares.ts) that wait below a daemon, each as the pids of its
 * processes: the waiting shim and its sandbox-uid ancestors (bwrap's two). A used spare has
 * no shim left, so it counts as a session's sandbox.
 */
export function waitingSpares(daemonPid: number): number[][] {
  const below = sandboxProcessesUnder(daemonPid);
  const ours = new Set(below.map((p) => p.pid));
  return below.filter((p) => p.argv[0] === PREPARED_SHELL && p.argv[p.argv.length - 1] === 'ebp-prepared').map((shim) => {
    const group = [shim.pid];
    for (let current = parentOf(shim.pid); current !== undefined && ours.has(current); current = parentOf(current)) group.push(current);
    return group;
  });
}

/** Processes of the sandbox uid below a daemon that are not part of a waiting spare. */
export function sessionProcessesUnder(daemonPid: number): HostProcess[] {
  const spares = new Set(waitingSpares(daemonPid).flat());
  return sandboxProcessesUnder(daemonPid).filter((p) => !spares.has(p.pid));
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Lines of a mount table (the host's, or a process's). */
export function mountCount(pid: number | 'self' = 'self'): number {
  return readFileSync(`/proc/${String(pid)}/mountinfo`, 'utf8').split('\n').filter((line) => line !== '').length;
}

/** Every `ebp-s-*` directory under /sys/fs/cgroup (all hierarchies, a few levels deep). */
export function sandboxCgroupDirs(maxDepth = 6): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of entries) {
      const path = join(dir, name);
      let isDir = false;
      try {
        isDir = statSync(path).isDirectory();
      } catch {
        continue;
      }
      if (!isDir) continue;
      if (name.startsWith('ebp-s-')) found.push(path);
      else if (depth < maxDepth) walk(path, depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 0);
  return found;
}

/** The session ids a daemon logged (`session-started session=ID`). */
export function loggedSessionIds(daemon: PoolDaemon): string[] {
  return [...daemon.log().matchAll(/session-started session=([0-9a-f]+)/g)].map((m) => m[1] ?? '');
}

/** The processes listed in a cgroup directory (cgroup.procs), or [] when it is gone. */
export function cgroupMembers(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter((line) => line !== '').map(Number);
  } catch {
    return [];
  }
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Terminals.

export interface TerminalRun {
  readonly screen: string;
  readonly exit: number;
}

/**
 * Runs COMMAND in a real pseudo-terminal of the given size (test/fixtures/in-terminal.py): each
 * step waits for a text on the screen, then types (or `@resize ROWS COLS`).
 */
export async function inTerminal(command: readonly string[], steps: readonly (readonly [string, string])[], size: { rows: number; cols: number }, timeoutS = 20): Promise<TerminalRun> {
  const child = spawn('python3', [IN_TERMINAL, String(size.rows), String(size.cols), String(timeoutS), '--', ...command], {
    env: baseEnv({ TERM: 'xterm-256color' }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  track(child);
  const killer = setTimeout(() => child.kill('SIGKILL'), (timeoutS + 15) * 1000);
  child.stdin.end(steps.map(([expect, send]) => `${expect}\t${send}\n`).join(''));
  let output = '';
  let errors = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  const match = /\[exit (-?\d+)\]\s*$/.exec(output);
  assert.ok(match?.[1] !== undefined, `the terminal driver ends with the exit status: ${output}\n${errors}`);
  return { screen: output, exit: Number(match[1]) };
}

// ---------------------------------------------------------------------------------------------
// Streams.

export interface PipeResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly bytes: number;
  readonly hash: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Pipes `data` into `ebp run PEER APP ARGS` (with backpressure) and hashes what comes out. */
export async function pipeThrough(stateDir: string, peer: string, command: readonly string[], data: Buffer, timeoutMs = 120_000): Promise<PipeResult> {
  const began = performance.now();
  const child = spawn(process.execPath, [EBP, '--state-dir', stateDir, 'run', peer, ...command], { stdio: ['pipe', 'pipe', 'pipe'], env: baseEnv() });
  track(child);
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const hash = createHash('sha256');
  let bytes = 0;
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.on('error', () => undefined);
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => { resolve({ code, signal }); });
  });
  const CHUNK = 256 * 1024;
  for (let offset = 0; offset < data.length && child.exitCode === null; offset += CHUNK) {
    if (!child.stdin.write(data.subarray(offset, offset + CHUNK))) {
      await Promise.race([new Promise((resolve) => child.stdin.once('drain', resolve)), closed]);
    }
  }
  child.stdin.end();
  const { code, signal } = await closed;
  clearTimeout(killer);
  return { code, signal, bytes, hash: hash.digest('hex'), stderr, ms: performance.now() - began };
}
