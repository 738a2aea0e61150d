// Test LANs in network namespaces: a bridge in a namespace of its own and any number of hosts,
// each a namespace with one veth "eth0" on the bridge, an address in 198.18.<n>.0/24 and an
// automatic IPv6 link-local address (duplicate address detection off so it is usable at once).
// Everything is named `ebpt-<random>-...` and removed by `destroy()`; nothing touches the real
// interfaces of the machine. Also: discovery-node child processes with JSON-line events.
import { ROOT } from '../../harness/testnet.js';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';

export { ROOT };
export const DISCOVERY_NODE = join(ROOT, 'test', 'fixtures', 'discovery-node.mjs');

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  if (spawnSync('ip', ['-V']).status !== 0) return 'iproute2 (ip) is not installed';
  const probe = `ebpt-${randomBytes(3).toString('hex')}-probe`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (added.status !== 0) return `cannot create a network namespace: ${added.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

function run(args: readonly string[]): string {
  const result = spawnSync(args[0] ?? 'false', args.slice(1), { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout;
}

export interface LabHost {
  readonly ns: string;
  readonly index: number;
  /** Address on eth0 (bridge br0). */
  readonly address: string;
  readonly ifname: 'eth0';
}

export class Lab {
  readonly prefix = `ebpt-${randomBytes(3).toString('hex')}`;
  readonly bridgeNs = `${this.prefix}-br`;
  /** Third octet of this lab's 198.18.x.0/24. */
  readonly subnet = randomInt(0, 256);
  readonly hosts: LabHost[] = [];
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private veths = 0;

  constructor() {
    this.addNs(this.bridgeNs);
    run(['ip', 'netns', 'exec', this.bridgeNs, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    run(['ip', '-n', this.bridgeNs, 'link', 'set', 'lo', 'up']);
    run(['ip', '-n', this.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    run(['ip', '-n', this.bridgeNs, 'link', 'set', 'br0', 'up']);
  }

  private addNs(name: string): void {
    run(['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
  }

  /** Adds a host namespace on the bridge. */
  addHost(): LabHost {
    const index = this.hosts.length + 1;
    if (index > 250) throw new Error('at most 250 hosts per lab');
    const ns = `${this.prefix}-h${index}`;
    this.addNs(ns);
    run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const host: LabHost = { ns, index, address: this.connect({ ns, index }, 'br0', 'eth0'), ifname: 'eth0' };
    this.hosts.push(host);
    return host;
  }

  /** A further bridge (own broadcast domain) in the bridge namespace: br1, br2, ... */
  addBridge(): string {
    const existing = run(['ip', '-n', this.bridgeNs, '-o', 'link', 'show', 'type', 'bridge']).split('\n').filter((line) => line.trim() !== '').length;
    const name = `br${existing}`;
    run(['ip', '-n', this.bridgeNs, 'link', 'add', name, 'type', 'bridge', 'mcast_snooping', '0']);
    run(['ip', '-n', this.bridgeNs, 'link', 'set', name, 'up']);
    return name;
  }

  /**
   * Adds interface `ifname` to a host, on bridge `bridge` (brN), with address
   * 198.18.<subnet>.<index> on br0, 198.19.<subnet>.<index> on br1 (at most two subnets).
   */
  connect(host: Pick<LabHost, 'ns' | 'index'>, bridge: string, ifname: string): string {
    const number = Number(bridge.slice(2));
    if (!Number.isInteger(number) || number < 0 || number > 1) throw new Error('only br0 and br1 have address ranges');
    this.veths += 1;
    const peer = `v${this.veths}`;
    run(['ip', 'link', 'add', ifname, 'netns', host.ns, 'type', 'veth', 'peer', 'name', peer, 'netns', this.bridgeNs]);
    run(['ip', '-n', this.bridgeNs, 'link', 'set', peer, 'master', bridge, 'up']);
    const address = `198.${18 + number}.${this.subnet}.${host.index}`;
    run(['ip', '-n', host.ns, 'addr', 'add', `${address}/24`, 'dev', ifname]);
    run(['ip', '-n', host.ns, 'link', 'set', ifname, 'up']);
    return address;
  }

  /** Waits until the IPv6 link-local address of a host is usable (not tentative). */
  async linkLocalReady(host: LabHost, timeoutMs = 5000, ifname = 'eth0'): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const text = run(['ip', '-n', host.ns, '-6', 'addr', 'show', 'dev', ifname, 'scope', 'link']);
      const match = /inet6 (fe80::[0-9a-f:]+)\/64/.exec(text);
      if (match?.[1] !== undefined && !text.includes('tentative')) return match[1];
      if (Date.now() > until) throw new Error(`no IPv6 link-local address on ${host.ns} ${ifname}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Spawns a command inside a host namespace (killed by destroy()). */
  spawn(ns: string, command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Runs a command inside a namespace to completion. */
  exec(ns: string, command: string, args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync('ip', ['netns', 'exec', ns, command, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** Starts a discovery node (test/fixtures/discovery-node.mjs) in a host namespace. */
  node(host: LabHost, options: Record<string, unknown>, nodeArgs: readonly string[] = []): DiscoveryNode {
    const child = this.spawn(host.ns, process.execPath, [...nodeArgs, DISCOVERY_NODE, JSON.stringify({ interfaces: ['eth0'], rescanMs: 0, ...options })]);
    return new DiscoveryNode(child, host);
  }

  async destroy(): Promise<void> {
    const exits = [...this.children].map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      child.once('exit', () => { resolve(); });
      child.kill('SIGKILL');
    }));
    await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 3000))]);
    for (const ns of [...this.namespaces].reverse()) spawnSync('ip', ['netns', 'del', ns]);
    this.namespaces.length = 0;
  }
}

export interface NodeEvent {
  readonly ev: string;
  readonly t: number;
  readonly [field: string]: unknown;
}

export interface PeerInfo {
  readonly key: string;
  readonly instance: string;
  readonly host: string;
  readonly addresses: string[];
  readonly port: number;
  readonly txt: Record<string, unknown> & { raw: Record<string, string> };
  readonly verified: boolean;
  readonly interfaces: string[];
  readonly lastSeen: number;
}

/** A discovery-node child: its events, its current peer view, commands. */
export class DiscoveryNode {
  readonly events: NodeEvent[] = [];
  /** instance name → peer, maintained from added/updated/removed events. */
  readonly peers = new Map<string, PeerInfo>();
  stderr = '';
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<number | null>;

  constructor(
    readonly child: ChildProcess,
    readonly host: LabHost,
  ) {
    let buffer = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      buffer += chunk;
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf('\n');
        if (line.trim() === '') continue;
        try {
          this.onEvent(JSON.parse(line) as NodeEvent);
        } catch {
          this.stderr += `unparsable stdout line: ${line}\n`;
        }
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-200_000);
    });
    child.stdin?.on('error', () => undefined);
    this.exited = new Promise((resolve) => child.once('exit', (code) => {
      resolve(code);
      this.wake();
    }));
  }

  private onEvent(event: NodeEvent): void {
    this.events.push(event);
    const peer = event['peer'] as PeerInfo | undefined;
    if (peer !== undefined) {
      if (event.ev === 'removed') this.peers.delete(peer.instance);
      else this.peers.set(peer.instance, peer);
    }
    this.wake();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  command(command: Record<string, unknown>): void {
    this.child.stdin?.write(`${JSON.stringify(command)}\n`);
  }

  /** Waits until `predicate` holds (checked on every event), or throws after timeoutMs. */
  async until<T>(what: string, predicate: () => T | undefined | false, timeoutMs: number): Promise<T> {
    const first = predicate();
    if (first !== undefined && first !== false) return first;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.host.ns}: timed out after ${timeoutMs} ms waiting for ${what}; events: ${JSON.stringify(this.events.slice(-12))}; stderr tail: ${this.stderr.slice(-1500)}`));
      }, timeoutMs);
      const check = (): void => {
        const value = predicate();
        if (value !== undefined && value !== false) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(value);
        }
      };
      this.waiters.add(check);
    });
  }

  /** The first event of a kind at or after `since` that matches. */
  async event(ev: string, match: (event: NodeEvent) => boolean, timeoutMs: number, since = 0): Promise<NodeEvent> {
    return this.until(`event ${ev}`, () => this.events.find((event) => event.ev === ev && event.t >= since && match(event)), timeoutMs);
  }

  async ready(timeoutMs = 15_000): Promise<string> {
    const event = await this.until('ready', () => this.events.find((e) => e.ev === 'ready' || e.ev === 'error'), timeoutMs);
    if (event.ev === 'error') throw new Error(`${this.host.ns}: discovery failed to start: ${String(event['message'])}`);
    return String(event['instance']);
  }

  /** The instance name now: the ready name, then the last renamed event. */
  instance(): string | undefined {
    let name: string | undefined;
    for (const event of this.events) if (event.ev === 'ready' || event.ev === 'renamed') name = String(event['instance'] ?? event['name']);
    return name;
  }

  async stats(timeoutMs = 5000): Promise<NodeEvent> {
    const since = this.events.length;
    this.command({ op: 'stats' });
    return this.until('stats', () => this.events.slice(since).find((event) => event.ev === 'stats'), timeoutMs);
  }

  async snapshot(timeoutMs = 5000): Promise<PeerInfo[]> {
    const since = this.events.length;
    this.command({ op: 'peers' });
    const event = await this.until('peers', () => this.events.slice(since).find((e) => e.ev === 'peers'), timeoutMs);
    return event['peers'] as PeerInfo[];
  }
}

/** A valid TXT for tests, with a fingerprint derived from `seed`. */
export function testTxt(seed: string, extra: Partial<{ apps: number; cat: string; load: string }> = {}): Record<string, unknown> {
  const id = `SHA256:${Buffer.from(seed.padEnd(32, '.')).toString('base64').replace(/=+$/, '').slice(0, 43).padEnd(43, 'A')}`;
  return { v: '1', id, apps: 3, cat: '00112233aabbccdd', load: '0/8', ...extra };
}
