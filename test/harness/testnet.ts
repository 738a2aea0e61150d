// Test LANs of eBrainPool daemons in network namespaces, for integration tests, benchmarks and
// `ebp demo`.
//
// createTestLan({ hosts: N }) makes one namespace holding a bridge (`<prefix>-br`, bridge br0,
// IPv6 off there) and N host namespaces (`<prefix>-h1` ...), each with one veth: `eth0` inside the
// host namespace, the other end (`v<i>`) made directly inside the bridge namespace and enslaved to
// br0. Hosts get 198.x.y.<i>/24 from a /24 picked at random inside 198.18.0.0/15 (the benchmarking
// range, RFC 2544) and an automatic IPv6 link-local address with duplicate address detection off,
// so it is usable at once. No interface is ever made in, or moved through, the caller's namespace:
// mDNS only ever runs on the veths of the test hosts.
//
// Daemons and CLI calls run inside a host namespace with `nsenter --net=/run/netns/<ns>`, never
// `ip netns exec`: the latter remounts /sys for the child, which hides /sys/fs/cgroup from the
// daemon, and its sandboxes would then lose their cgroups. Each host has a state folder of its
// own. Everything (processes, namespaces with their links, state folders) is removed by destroy(),
// and also — synchronously, as a last resort — when the process exits or, unless turned off, on
// SIGINT/SIGTERM/SIGHUP.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { loadOrCreateIdentity } from '../../src/peer/identity.js';
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js';
import { TrustStore } from '../../src/peer/trust-store.js';
import type { PeerView } from '../../src/peer/directory.js';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'bin', 'ebp')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (a folder with bin/ebp)');
    dir = up;
  }
}

/** The repository: bin/ebp and dist/ are found from here. */
export const ROOT = findRoot();
export const EBP_BIN = join(ROOT, 'bin', 'ebp');
/** The port every test daemon listens on (each host has its own network namespace). */
export const DAEMON_PORT = 20101;
export const MAX_HOSTS = 250;

// ---------------------------------------------------------------------------------------------
// Small helpers.

function sh(args: readonly string[], what = args.join(' ')): string {
  const result = spawnSync(args[0] ?? 'false', args.slice(1), { encoding: 'utf8', timeout: 20_000 });
  if (result.error !== undefined) throw new Error(`${what}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${what} failed (${String(result.status)}): ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Calls `probe` until it returns something other than undefined/false, or throws after
 * timeoutMs with `what` and the last value or error seen.
 */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= until) {
      // JSON.stringify(undefined) is undefined, whatever its declared type says.
      const detail = last instanceof Error ? last.message : (JSON.stringify(last) as string | undefined);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${(detail ?? 'undefined').slice(0, 2000)})`);
    }
    await sleep(intervalMs);
  }
}

let pdeathsigChecked: boolean | undefined;
/** setpriv can make a child die with us (PR_SET_PDEATHSIG): daemons never outlive a crashed parent. */
function pdeathsigPrefix(): string[] {
  pdeathsigChecked ??= (() => {
    const help = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
    return help.status === 0 && help.stdout.includes('--pdeathsig');
  })();
  return pdeathsigChecked ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
}

/** Why test LANs cannot be made here, or undefined when they can. */
export function testLanSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const tool of [['ip', '-V'], ['nsenter', '--version']] as const) {
    if (spawnSync(tool[0], [tool[1]]).status !== 0) return `${tool[0]} is not installed`;
  }
  const probe = `ebpt${randomBytes(2).toString('hex')}-probe`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (added.status !== 0) return `cannot create a network namespace: ${added.stderr.trim()}`;
  const bridge = spawnSync('ip', ['-n', probe, 'link', 'add', 'br0', 'type', 'bridge'], { encoding: 'utf8' });
  spawnSync('ip', ['netns', 'del', probe]);
  if (bridge.status !== 0) return `cannot create a bridge: ${bridge.stderr.trim()}`;
  return undefined;
}

/** `ebp setup` (idempotent): as root, daemons need the ebp-sandbox user and cgroup folders. */
export function ensureSetup(): void {
  const result = spawnSync(process.execPath, [EBP_BIN, 'setup'], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`ebp setup failed: ${result.stderr}${result.stdout}`);
}

/** Whether the sandbox user exists (what `ebp setup` creates; daemons run as root need it). */
export function sandboxUserExists(): boolean {
  try {
    return readFileSync('/etc/passwd', 'utf8').split('\n').some((line) => line.startsWith('ebp-sandbox:'));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration of test daemons.

export interface ExtraApp {
  readonly id: string;
  readonly name: string;
  readonly exec: string;
  readonly terminal?: boolean;
  readonly comment?: string;
}

/** Terminal apps every test daemon shares unless told otherwise. */
export const DEFAULT_APPS: readonly ExtraApp[] = [
  { id: 'echo', name: 'Echo', exec: 'echo', terminal: true, comment: 'prints its arguments' },
  { id: 'cat', name: 'Cat', exec: 'cat', terminal: true, comment: 'copies stdin to stdout' },
  { id: 'sh', name: 'Shell', exec: 'sh', terminal: true, comment: 'a POSIX shell in a sandbox' },
  { id: 'date', name: 'Date', exec: 'date', terminal: true, comment: 'the peer\'s clock' },
];

function tomlString(text: string): string {
  return JSON.stringify(text);
}

/** A config.toml sharing `apps` (as [[extra_apps]]), with optional top-level lines. */
export function configToml(options: { apps?: readonly ExtraApp[]; policy?: 'ask' | 'trusted-only' | 'open'; extra?: string } = {}): string {
  const lines: string[] = [];
  if (options.extra !== undefined) lines.push(options.extra.trim());
  // Only the apps given: the machine's desktop files would make counts depend on the host.
  lines.push('', '[share]', `apps = [${(options.apps ?? DEFAULT_APPS).map((app) => tomlString(app.id)).join(', ')}]`);
  if (options.policy !== undefined) lines.push('', '[approval]', `policy = ${tomlString(options.policy)}`);
  for (const app of options.apps ?? DEFAULT_APPS) {
    lines.push('', '[[extra_apps]]', `id = ${tomlString(app.id)}`, `name = ${tomlString(app.name)}`, `exec = ${tomlString(app.exec)}`, `terminal = ${String(app.terminal ?? true)}`);
    if (app.comment !== undefined) lines.push(`comment = ${tomlString(app.comment)}`);
  }
  return `${lines.join('\n').trim()}\n`;
}

// ---------------------------------------------------------------------------------------------
// Processes.

export interface ProcessResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface LogEvent {
  /** Date.now() when the line arrived here. */
  readonly at: number;
  readonly event: string;
  readonly [field: string]: unknown;
}

export interface DaemonEvents {
  log: [LogEvent];
  exit: [{ code: number | null; signal: NodeJS.Signals | null }];
}

/** One `ebp up` inside a host namespace. */
export class TestDaemon extends EventEmitter<DaemonEvents> {
  readonly events: LogEvent[] = [];
  /** Announced name after any clash renaming, from the "sharing" line. */
  name = '';
  fingerprint = '';
  apps = 0;
  port = 0;
  readonly spawnedAt = Date.now();
  startedAt = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stdout = '';
  #stderr = '';
  #stderrLine = '';
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(readonly host: TestHost, readonly child: ChildProcess, readonly wantedName: string) {
    super();
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      this.#stdout = (this.#stdout + chunk).slice(-100_000);
      const match = /sharing (\d+) apps as "(.*)" on port (\d+) \((SHA256:[A-Za-z0-9+/]+)\)/.exec(this.#stdout);
      if (match !== null && this.startedAt === 0) {
        this.apps = Number(match[1]);
        this.name = match[2] ?? '';
        this.port = Number(match[3]);
        this.fingerprint = match[4] ?? '';
        this.startedAt = Date.now();
      }
      this.#wake();
    });
    child.stderr?.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-400_000);
      this.#stderrLine += chunk;
      let newline = this.#stderrLine.indexOf('\n');
      while (newline >= 0) {
        const line = this.#stderrLine.slice(0, newline);
        this.#stderrLine = this.#stderrLine.slice(newline + 1);
        newline = this.#stderrLine.indexOf('\n');
        if (!line.startsWith('{')) continue;
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (typeof parsed['event'] !== 'string') continue;
          const event = { ...parsed, at: Date.now() } as LogEvent;
          if (event.event === 'discovery-renamed' && typeof event['name'] === 'string') this.name = event['name'];
          if (this.events.length < 20_000) this.events.push(event);
          this.emit('log', event);
        } catch {
          // not one of our JSON lines
        }
      }
      this.#wake();
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        this.emit('exit', this.#exit);
        resolve(this.#exit);
        this.#wake();
      });
      child.once('error', () => {
        this.#exit ??= { code: null, signal: null };
        resolve(this.#exit);
        this.#wake();
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  stdout(): string {
    return this.#stdout;
  }

  stderr(): string {
    return this.#stderr;
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Resolves with the first value `probe` gives on output; rejects on timeout or exit. */
  until<T>(what: string, probe: () => T | undefined | false, timeoutMs: number): Promise<T> {
    const first = probe();
    if (first !== undefined && first !== false) return Promise.resolve(first);
    return new Promise<T>((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        reject(new Error(`${this.host.ns} (${this.wantedName}): ${why} waiting for ${what}\nstdout: ${this.#stdout.slice(-2000)}\nstderr: ${this.#stderr.slice(-4000)}`));
      };
      const timer = setTimeout(() => { fail(`timed out after ${timeoutMs} ms`); }, timeoutMs);
      const check = (): void => {
        const value = probe();
        if (value !== undefined && value !== false) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve(value);
        } else if (this.#exit !== undefined) {
          fail(`exited (${String(this.#exit.code ?? this.#exit.signal)})`);
        }
      };
      this.#waiters.add(check);
    });
  }

  /** Waits for the "ebp: sharing N apps as NAME on port P (ID)" line. */
  async ready(timeoutMs = 30_000): Promise<this> {
    await this.until('the "sharing ... on port" line', () => this.startedAt > 0, timeoutMs);
    return this;
  }

  /** The first log event `event` at or after `since` (Date.now() ms) that matches. */
  event(event: string, match: (entry: LogEvent) => boolean = () => true, timeoutMs = 10_000, since = 0): Promise<LogEvent> {
    return this.until(`log event ${event}`, () => this.events.find((entry) => entry.event === event && entry.at >= since && match(entry)), timeoutMs);
  }

  /** Instance names this daemon has found and not lost, from its peer-added/removed log lines. */
  seen(): Set<string> {
    const names = new Set<string>();
    for (const entry of this.events) {
      const name = entry['name'];
      if (typeof name !== 'string') continue;
      if (entry.event === 'peer-added') names.add(name);
      else if (entry.event === 'peer-removed') names.delete(name);
    }
    return names;
  }

  /** SIGTERM (goodbyes, sessions ended), then SIGKILL if it has not ended after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const began = Date.now();
    if (this.running) this.child.kill('SIGTERM');
    const timer = setTimeout(() => { if (this.running) this.child.kill('SIGKILL'); }, timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return { ...exit, ms: Date.now() - began };
  }

  /** SIGKILL: no goodbyes, as when a machine loses power or its network. */
  async kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill('SIGKILL');
    return this.exited;
  }
}

/** A process other than a daemon started in a host (e.g. an announcer); killed by destroy(). */
export interface HostProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ProcessResult>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout match; rejects when the process ends first or on timeout. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  stop(timeoutMs?: number): Promise<ProcessResult>;
}

// ---------------------------------------------------------------------------------------------
// The LAN.

export interface TestHost {
  readonly index: number;
  /** Namespace name, `<prefix>-h<index>`. */
  readonly ns: string;
  /** /run/netns/<ns>, for nsenter --net. */
  readonly nsPath: string;
  readonly ifname: 'eth0';
  /** The other end of eth0, inside the bridge namespace. */
  readonly bridgePort: string;
  readonly address: string;
  /** address:20101 */
  readonly endpoint: string;
  readonly stateDir: string;
  /** The daemon running there now, if any. */
  daemon: TestDaemon | undefined;
}

export interface TestLanOptions {
  /** How many hosts (1..250). */
  readonly hosts: number;
  /** Start of every name: namespaces `<prefix>-br`, `<prefix>-h1`...; default `ebpt` + 4 random characters. */
  readonly prefix?: string;
  /** First three octets of the hosts' /24, inside 198.18.0.0/15 (default: one at random). */
  readonly subnet?: string;
  /** Where the hosts' state folders go (default: a new folder in the temporary folder). */
  readonly stateRoot?: string;
  /** destroy() leaves the state folders. */
  readonly keepState?: boolean;
  /** Clean up synchronously on SIGINT/SIGTERM/SIGHUP, then exit (default true; `ebp demo` handles them itself). */
  readonly cleanupOnSignal?: boolean;
}

export interface DaemonOptions {
  /** --name (default h<index>). */
  readonly name?: string;
  /** config.toml text (default: configToml() sharing DEFAULT_APPS). Written to the host's default config location. */
  readonly config?: string;
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra arguments after `up ...` (e.g. --no-discovery). */
  readonly args?: readonly string[];
  /** --port (default 20101). */
  readonly port?: number;
  /** Wait for the "sharing" line (default true). */
  readonly wait?: boolean;
  readonly timeoutMs?: number;
}

export interface CliOptions {
  readonly input?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** SIGKILL after this long (default 30 s). */
  readonly timeoutMs?: number;
}

/** Every LAN not yet destroyed, for the last-resort cleanup on exit. */
const live = new Set<TestLan>();
let exitHooked = false;
let signalsHooked = false;

function hookExit(signals: boolean): void {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => { for (const lan of live) lan.destroySync(); });
  }
  if (signals && !signalsHooked) {
    signalsHooked = true;
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        for (const lan of live) lan.destroySync();
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
    }
  }
}

function randomSubnet(): string {
  return `198.${18 + randomInt(2)}.${randomInt(256)}`;
}

function checkSubnet(subnet: string): string {
  const match = /^198\.(18|19)\.(\d{1,3})$/.exec(subnet);
  if (match === null || Number(match[2]) > 255) throw new Error(`subnet ${subnet} must be "198.18.X" or "198.19.X" (inside 198.18.0.0/15)`);
  return subnet;
}

export class TestLan {
  readonly prefix: string;
  readonly bridgeNs: string;
  readonly subnet: string;
  readonly stateRoot: string;
  readonly hosts: TestHost[] = [];
  readonly #namespaces: string[] = [];
  readonly #children = new Set<ChildProcess>();
  readonly #keepState: boolean;
  #destroyed = false;

  private constructor(options: TestLanOptions) {
    this.prefix = options.prefix ?? `ebpt${randomBytes(2).toString('hex')}`;
    if (!/^[a-z][a-z0-9]{0,11}$/.test(this.prefix)) throw new Error(`prefix "${this.prefix}" must be 1 to 12 lower-case letters and digits`);
    this.bridgeNs = `${this.prefix}-br`;
    this.subnet = checkSubnet(options.subnet ?? randomSubnet());
    this.#keepState = options.keepState === true;
    if (options.stateRoot !== undefined) {
      mkdirSync(options.stateRoot, { recursive: true, mode: 0o700 });
      this.stateRoot = options.stateRoot;
    } else {
      this.stateRoot = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    }
  }

  /** Makes the bridge and the hosts. On failure everything made so far is removed. */
  static async create(options: TestLanOptions): Promise<TestLan> {
    if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > MAX_HOSTS) throw new Error(`hosts must be 1..${MAX_HOSTS}`);
    const lan = new TestLan(options);
    live.add(lan);
    hookExit(options.cleanupOnSignal !== false);
    try {
      lan.#addNs(lan.bridgeNs);
      lan.#sysctl(lan.bridgeNs, ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      sh(['ip', '-n', lan.bridgeNs, 'link', 'set', 'lo', 'up']);
      // Multicast snooping off: every mDNS packet reaches every port, as on a plain switch.
      sh(['ip', '-n', lan.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0', 'stp_state', '0']);
      sh(['ip', '-n', lan.bridgeNs, 'link', 'set', 'br0', 'up']);
      for (let index = 0; index < options.hosts; index += 1) lan.addHost();
      await lan.linksReady();
    } catch (error) {
      await lan.destroy();
      throw error;
    }
    return lan;
  }

  #addNs(name: string): void {
    sh(['ip', 'netns', 'add', name]);
    this.#namespaces.push(name);
  }

  #sysctl(ns: string, settings: readonly string[]): void {
    sh(['nsenter', `--net=/run/netns/${ns}`, '--', 'sysctl', '-qw', ...settings]);
  }

  /** Adds one more host on the bridge (links come up at once; see linksReady()). */
  addHost(): TestHost {
    const index = this.hosts.length + 1;
    if (index > MAX_HOSTS) throw new Error(`at most ${MAX_HOSTS} hosts per LAN`);
    const ns = `${this.prefix}-h${index}`;
    this.#addNs(ns);
    // Before eth0 exists, so that it inherits "default": its link-local address is usable at once.
    this.#sysctl(ns, ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    const bridgePort = `v${index}`;
    sh(['ip', 'link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', bridgePort, 'netns', this.bridgeNs]);
    sh(['ip', '-n', this.bridgeNs, 'link', 'set', bridgePort, 'master', 'br0', 'up']);
    const address = `${this.subnet}.${index}`;
    sh(['ip', '-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    const stateDir = join(this.stateRoot, `h${index}`);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const host: TestHost = { index, ns, nsPath: `/run/netns/${ns}`, ifname: 'eth0', bridgePort, address, endpoint: `${address}:${DAEMON_PORT}`, stateDir, daemon: undefined };
    this.hosts.push(host);
    return host;
  }

  /** Waits until every host's eth0 is up with a usable IPv6 link-local address. */
  async linksReady(timeoutMs = 10_000): Promise<void> {
    for (const host of this.hosts) {
      await waitUntil(`${host.ns}: eth0 up with an IPv6 link-local address`, () => {
        const text = sh(['ip', '-n', host.ns, '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'link']);
        const up = sh(['ip', '-n', host.ns, 'link', 'show', 'dev', 'eth0']).includes('LOWER_UP');
        return up && /inet6 fe80::/.test(text) && !text.includes('tentative');
      }, timeoutMs, 20);
    }
  }

  /** Unplugs a host from the bridge (its daemon keeps running, alone on its link). */
  detach(host: TestHost): void {
    sh(['ip', '-n', this.bridgeNs, 'link', 'set', host.bridgePort, 'nomaster']);
  }

  /** Plugs a host back into the bridge. */
  attach(host: TestHost): void {
    sh(['ip', '-n', this.bridgeNs, 'link', 'set', host.bridgePort, 'master', 'br0']);
  }

  host(index: number): TestHost {
    const host = this.hosts[index - 1];
    if (host === undefined) throw new Error(`no host ${index}`);
    return host;
  }

  /** Spawns `command` inside a host's namespace (killed by destroy()). */
  spawnIn(host: TestHost, command: readonly string[], options: { env?: Readonly<Record<string, string>>; stdin?: 'ignore' | 'pipe'; dieWithParent?: boolean } = {}): ChildProcess {
    if (this.#destroyed) throw new Error('this LAN was destroyed');
    const guard = options.dieWithParent === false ? [] : pdeathsigPrefix();
    const child = spawn('nsenter', [`--net=${host.nsPath}`, '--', ...guard, ...command], {
      stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    child.once('error', () => this.#children.delete(child));
    return child;
  }

  /** Any process in a host, with its output collected. */
  start(host: TestHost, command: readonly string[], options: { env?: Readonly<Record<string, string>>; input?: string } = {}): HostProcess {
    const began = Date.now();
    const child = this.spawnIn(host, command, { ...(options.env === undefined ? {} : { env: options.env }), stdin: options.input === undefined ? 'ignore' : 'pipe' });
    let out = '';
    let err = '';
    const waiters = new Set<() => void>();
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      out = (out + chunk).slice(-1_000_000);
      for (const waiter of [...waiters]) waiter();
    });
    child.stderr?.on('data', (chunk: string) => { err = (err + chunk).slice(-1_000_000); });
    if (options.input !== undefined) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input);
    }
    const exited = new Promise<ProcessResult>((resolve) => {
      child.once('error', (error) => { resolve({ code: null, signal: null, stdout: out, stderr: `${err}${error.message}`, ms: Date.now() - began }); });
      child.once('close', (code, signal) => {
        resolve({ code, signal, stdout: out, stderr: err, ms: Date.now() - began });
        for (const waiter of [...waiters]) waiter();
      });
    });
    let ended = false;
    void exited.then(() => { ended = true; });
    return {
      child,
      exited,
      stdout: () => out,
      stderr: () => err,
      waitFor(pattern, timeoutMs = 15_000) {
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            waiters.delete(check);
            reject(new Error(`no ${String(pattern)} on stdout within ${timeoutMs} ms; stdout: ${out.slice(-2000)}; stderr: ${err.slice(-2000)}`));
          }, timeoutMs);
          const check = (): void => {
            const match = pattern.exec(out);
            if (match !== null) {
              clearTimeout(timer);
              waiters.delete(check);
              resolve(match);
            } else if (ended) {
              clearTimeout(timer);
              waiters.delete(check);
              reject(new Error(`process ended before ${String(pattern)}; stdout: ${out.slice(-2000)}; stderr: ${err.slice(-2000)}`));
            }
          };
          waiters.add(check);
          check();
        });
      },
      async stop(timeoutMs = 5000) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const result = await exited;
        clearTimeout(timer);
        return result;
      },
    };
  }

  /**
   * Starts `ebp --state-dir <host state> up --name NAME --port 20101 --interface eth0
   * --log-format json ARGS` inside the host; resolves once it says "sharing ... on port".
   */
  async startDaemon(host: TestHost, options: DaemonOptions = {}): Promise<TestDaemon> {
    if (host.daemon?.running === true) throw new Error(`${host.ns} already runs a daemon`);
    const name = options.name ?? `h${host.index}`;
    const configDir = join(host.stateDir, 'config');
    mkdirSync(configDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(configDir, 'config.toml'), options.config ?? configToml(), { mode: 0o600 });
    const args = [
      process.execPath, ...DAEMON_NODE_FLAGS, EBP_BIN, '--state-dir', host.stateDir, 'up',
      '--name', name, '--port', String(options.port ?? DAEMON_PORT), '--interface', host.ifname, '--log-format', 'json',
      ...(options.args ?? []),
    ];
    const child = this.spawnIn(host, args, options.env === undefined ? {} : { env: options.env });
    const daemon = new TestDaemon(host, child, name);
    host.daemon = daemon;
    if (options.wait !== false) await daemon.ready(options.timeoutMs ?? 30_000);
    return daemon;
  }

  /** `ebp --state-dir <host state> ARGS` inside the host, to completion. */
  ebp(host: TestHost, args: readonly string[], options: CliOptions = {}): Promise<ProcessResult> {
    const proc = this.start(host, [process.execPath, EBP_BIN, '--state-dir', host.stateDir, ...args], {
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.input === undefined ? {} : { input: options.input }),
    });
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    return proc.exited.finally(() => { clearTimeout(timer); });
  }

  /** `ebp ARGS --json` inside the host, parsed; throws with its output when it fails. */
  async ebpJson<T>(host: TestHost, args: readonly string[], options: CliOptions = {}): Promise<T> {
    const result = await this.ebp(host, ['--json', ...args], options);
    if (result.code !== 0) throw new Error(`ebp ${args.join(' ')} on ${host.ns} exited ${String(result.code ?? result.signal)}: ${result.stderr.trim()}`);
    return JSON.parse(result.stdout) as T;
  }

  /** `ebp peers --json` in a host. */
  peers(host: TestHost): Promise<PeerView[]> {
    return this.ebpJson<PeerView[]>(host, ['peers']);
  }

  /** The host's identity (made on first use): fingerprint and OpenSSH public key. */
  async identity(host: TestHost): Promise<{ fingerprint: string; publicKey: string }> {
    const identity = await loadOrCreateIdentity(host.stateDir);
    return { fingerprint: identity.fingerprint, publicKey: identity.publicKey };
  }

  /**
   * Every host in `hosts` trusts every other one's key (as `ebp trust --key "$(ebp id
   * --public-key)"` would do): through the daemon when one runs there, else in the state folder.
   */
  async trustEachOther(hosts: readonly TestHost[] = this.hosts, names: (host: TestHost) => string = (host) => `h${host.index}`): Promise<void> {
    const keys = await Promise.all(hosts.map(async (host) => ({ host, key: (await this.identity(host)).publicKey })));
    for (const host of hosts) {
      const others = keys.filter((entry) => entry.host !== host);
      if (host.daemon?.running === true) {
        for (const other of others) {
          const result = await this.ebp(host, ['trust', '--key', other.key, '--name', names(other.host)]);
          if (result.code !== 0) throw new Error(`ebp trust on ${host.ns} failed: ${result.stderr}`);
        }
      } else {
        const store = await TrustStore.open(host.stateDir);
        for (const other of others) await store.add(other.key, { name: names(other.host) });
      }
    }
  }

  /**
   * A DNS-SD announcement from a host made with src/discovery directly (no daemon behind it):
   * `name`, `port`, and any TXT, e.g. one claiming another host's id. Stop it with stop()
   * (goodbyes) or child.kill('SIGKILL').
   */
  announce(host: TestHost, options: { name: string; port: number; txt: Readonly<Record<string, unknown>>; ttlSeconds?: number }): HostProcess & { ready: Promise<string> } {
    const discoveryUrl = pathToFileURL(join(ROOT, 'dist', 'src', 'discovery', 'index.js')).href;
    const script = [
      `const { Discovery } = await import(${JSON.stringify(discoveryUrl)});`,
      'const options = JSON.parse(process.argv[1]);',
      'const discovery = await Discovery.start({ ...options, interfaces: ["eth0"], browse: false, rescanMs: 0 });',
      'process.stdout.write(JSON.stringify({ ready: discovery.instanceName }) + "\\n");',
      'discovery.on("renamed", (name) => process.stdout.write(JSON.stringify({ renamed: name }) + "\\n"));',
      'const stop = () => void discovery.close().then(() => process.exit(0));',
      'process.on("SIGTERM", stop); process.on("SIGINT", stop);',
      'setInterval(() => undefined, 1 << 30);',
    ].join('\n');
    const proc = this.start(host, [process.execPath, '--input-type=module', '-e', script, JSON.stringify({ name: options.name, port: options.port, txt: options.txt, ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }) })]);
    const ready = proc.waitFor(/\{"ready":(".*?")\}/, 20_000).then((match) => JSON.parse(match[1] ?? '""') as string);
    return { ...proc, ready };
  }

  /** Every daemon started in this LAN that still runs. */
  daemons(): TestDaemon[] {
    return this.hosts.map((host) => host.daemon).filter((daemon): daemon is TestDaemon => daemon?.running === true);
  }

  /**
   * Removes everything: stops the daemons (SIGTERM, then SIGKILL after `graceMs`), kills any
   * other process started here and whatever is still inside our namespaces, deletes the
   * namespaces (their veths and the bridge go with them) and the state folders.
   */
  async destroy(graceMs = 3000): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const children = [...this.#children];
    const exits = children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      child.once('exit', () => { resolve(); });
    }));
    for (const child of children) child.kill('SIGTERM');
    const killer = setTimeout(() => { for (const child of children) child.kill('SIGKILL'); }, graceMs);
    let giveUp: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(exits), new Promise((resolve) => (giveUp = setTimeout(resolve, graceMs + 2000)))]);
    clearTimeout(killer);
    clearTimeout(giveUp);
    this.#teardown();
  }

  /** destroy() for exit handlers: SIGKILL, no waiting for goodbyes. */
  destroySync(): void {
    if (this.#destroyed && this.#namespaces.length === 0) return;
    this.#destroyed = true;
    for (const child of this.#children) child.kill('SIGKILL');
    this.#teardown();
  }

  #teardown(): void {
    // Processes still inside our namespaces are ours (sandboxes of our daemons, say).
    for (const ns of this.#namespaces) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').map(Number).filter((pid) => Number.isInteger(pid) && pid > 1);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    for (const ns of [...this.#namespaces].reverse()) spawnSync('ip', ['netns', 'del', ns]);
    this.#namespaces.length = 0;
    this.#children.clear();
    if (!this.#keepState) rmSync(this.stateRoot, { recursive: true, force: true });
    live.delete(this);
  }
}

/** A LAN of `hosts` namespaces on one bridge; see TestLan. */
export function createTestLan(options: TestLanOptions): Promise<TestLan> {
  return TestLan.create(options);
}

// ---------------------------------------------------------------------------------------------
// Process memory.

/** RSS and PSS in KiB from /proc/PID/smaps_rollup (zeros when the process is gone). */
export function processMemoryKiB(pid: number): { rssKiB: number; pssKiB: number } {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    return { rssKiB: field('Rss'), pssKiB: field('Pss') };
  } catch {
    return { rssKiB: 0, pssKiB: 0 };
  }
}
