// Discovery: the DNS-SD over mDNS service of the daemon, on real sockets.
//
// Sockets: one UDP socket per selected interface and address family, each bound to the wildcard
// address on port 5353 with SO_REUSEADDR (so avahi-daemon, Bonjour or a second ebp on the same
// host share the port), joined to 224.0.0.251 / ff02::fb on its interface only, sending through
// that interface (IP_MULTICAST_IF), multicast TTL 255, multicast loopback on.
//
// Arrival interface: Linux delivers a copy of every group packet to every socket bound to the
// port, whichever interface it came in on, and Node does not expose IP_PKTINFO. So each socket
// only accepts packets whose source is on its own link: IPv6 sources carry their scope
// ("fe80::1%eth0"), IPv4 sources must be in one of the interface's subnets (RFC 6762 §11 asks
// for that source check anyway). Each packet is thus handled once, by the socket of its link;
// packets from off-link sources are dropped. Only selected interfaces are used for both
// receiving and sending. (A unicast datagram to port 5353 reaches one of the sockets only; we
// never ask for unicast responses, so this matters only for multi-homed hosts receiving QU
// answers from others, which then arrive again by multicast within the RFC's quarter TTL.)
import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';

import { EbpError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/log.js';
import type { DiscoveredPeer } from './cache.js';
import { DEFAULT_TTL_SECONDS, type Destination, DiscoveryCore, MDNS_PORT, MDNS_V4, MDNS_V6 } from './core.js';
import { type Link, selectLinks, sourceOnLink } from './interfaces.js';
import type { PeerTxt } from './txt.js';

export interface DiscoveryOptions {
  /** Wanted instance name (one DNS label: ≤ 63 bytes UTF-8, no control characters). */
  readonly name: string;
  /** Our SSH port (the SRV port). */
  readonly port: number;
  readonly txt: PeerTxt;
  /** Restrict to these interfaces; default: all up, multicast-capable, non-loopback ones. */
  readonly interfaces?: readonly string[];
  /** Probe, announce and answer for our service (default true). */
  readonly announce?: boolean;
  /** Look for peers (default true). */
  readonly browse?: boolean;
  /** Use IPv6 too (default true). */
  readonly ipv6?: boolean;
  readonly log?: Logger;
  /** TTL of our records in seconds (default 75); short values are for tests. */
  readonly ttlSeconds?: number;
  /** How often the interface list is read again, ms (default 5000; 0 = never). */
  readonly rescanMs?: number;
  /** Longest wait in start() for our name to be established (default 10000 ms). */
  readonly startTimeoutMs?: number;
}

export interface DiscoveryEvents {
  added: [DiscoveredPeer];
  updated: [DiscoveredPeer];
  removed: [DiscoveredPeer];
  renamed: [string];
}

interface LinkSockets {
  link: Link;
  readonly v4: Socket | undefined;
  readonly v6: Socket | undefined;
}

export interface DiscoveryStats {
  readonly received: number;
  readonly offLink: number;
  readonly rateLimited: number;
  readonly malformed: number;
  readonly ignored: number;
  readonly errors: number;
  readonly sent: number;
  readonly sendErrors: number;
  readonly conflicts: number;
  readonly cache: { readonly instances: number; readonly hosts: number; readonly records: number };
}

function closeSocket(socket: Socket | undefined): void {
  if (socket === undefined) return;
  try {
    socket.close();
  } catch {
    // already closed
  }
}

export class Discovery extends EventEmitter<DiscoveryEvents> {
  private readonly core: DiscoveryCore;
  private readonly log: Logger;
  private readonly sockets = new Map<string, LinkSockets>();
  private rescanTimer: NodeJS.Timeout | undefined;
  private rescanning = false;
  private closed: Promise<void> | undefined;
  private inFlight = 0;
  private drained: (() => void) | undefined;
  private offLink = 0;
  private sendErrors = 0;
  private lastSendErrorLog = 0;
  /** Events raised before start() has returned, replayed right after (so no listener misses them). */
  private early: [keyof DiscoveryEvents, DiscoveredPeer | string][] | undefined = [];
  private earlyOverflow = false;

  private constructor(private readonly options: DiscoveryOptions) {
    super();
    this.log = options.log ?? silentLogger;
    this.core = new DiscoveryCore(
      {
        name: options.name,
        port: options.port,
        txt: options.txt,
        announce: options.announce ?? true,
        browse: options.browse ?? true,
        ttlSeconds: options.ttlSeconds ?? DEFAULT_TTL_SECONDS,
        hostname: hostname(),
        log: this.log,
      },
      { send: (link, packet, to) => { this.send(link, packet, to); } },
      {
        peer: (kind, peer) => { this.safeEmit(kind, peer); },
        renamed: (name) => { this.safeEmit('renamed', name); },
      },
    );
  }

  /** Opens the sockets and resolves once our instance name is established (after probing). */
  static async start(options: DiscoveryOptions): Promise<Discovery> {
    const discovery = new Discovery(options);
    const links = selectLinks(options.interfaces, options.ipv6 ?? true);
    if (links.length === 0) {
      discovery.log('discovery.no-interfaces', { wanted: options.interfaces ?? 'all', note: 'waiting for one to come up' });
    }
    // One interface that cannot be used is logged and skipped; none usable at all is an error.
    let failure: Error | undefined;
    for (const link of links) {
      try {
        await discovery.openLink(link);
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error));
        discovery.log('discovery.interface-failed', { interface: link.name, error: error instanceof Error ? error.message : String(error) });
      }
    }
    if (failure !== undefined && discovery.sockets.size === 0) throw failure;
    discovery.core.setLinks([...discovery.sockets.values()].map((sockets) => sockets.link));
    const rescanMs = options.rescanMs ?? 5000;
    if (rescanMs > 0) discovery.rescanTimer = setInterval(() => void discovery.rescan(), rescanMs);
    const timeout = options.startTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([discovery.core.start(), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout)))]);
    clearTimeout(timer);
    setImmediate(() => { discovery.replayEarly(); });
    discovery.log('discovery.started', {
      instance: discovery.instanceName,
      interfaces: [...discovery.sockets.keys()],
      ttl: options.ttlSeconds ?? DEFAULT_TTL_SECONDS,
    });
    return discovery;
  }

  /** Our instance name after conflict resolution, e.g. "name (2)". */
  get instanceName(): string {
    return this.core.instanceName;
  }

  /** Our host label: `<label>.local` is the SRV target. */
  get hostLabel(): string {
    return this.core.hostLabel;
  }

  /** Peers found (ourselves excluded). */
  peers(): DiscoveredPeer[] {
    return this.core.peers();
  }

  /** Re-announces changed TXT data (unchanged data: nothing sent). Throws EbpError CONFIG_INVALID when a field is invalid. */
  updateTxt(txt: PeerTxt): void {
    this.core.updateTxt(txt);
  }

  /** Goodbyes for the old name, then probing and announcing under the new one. */
  rename(name: string): void {
    this.core.rename(name);
  }

  stats(): DiscoveryStats {
    const core = this.core.stats;
    return { ...core, offLink: this.offLink, sendErrors: this.sendErrors, cache: this.core.cacheSize() };
  }

  /** Sends goodbyes (TTL 0) on every link, waits for them to leave (≤ 500 ms), closes the sockets. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.rescanTimer !== undefined) clearInterval(this.rescanTimer);
      this.core.close();
      if (this.inFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => (this.drained = resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, 500))),
        ]);
        clearTimeout(timer);
      }
      for (const sockets of this.sockets.values()) {
        closeSocket(sockets.v4);
        closeSocket(sockets.v6);
      }
      this.sockets.clear();
      this.log('discovery.closed', { instance: this.instanceName });
    })();
    return this.closed;
  }

  // ---------------------------------------------------------------------------------------------

  private isClosed(): boolean {
    return this.closed !== undefined;
  }

  private replayEarly(): void {
    const early = this.early ?? [];
    this.early = undefined;
    if (this.isClosed()) return;
    if (this.earlyOverflow) {
      for (const peer of this.peers()) this.safeEmit('added', peer);
      return;
    }
    for (const [event, arg] of early) {
      if (event === 'renamed') this.safeEmit(event, arg as string);
      else this.safeEmit(event, arg as DiscoveredPeer);
    }
  }

  private safeEmit<K extends keyof DiscoveryEvents>(event: K, ...args: DiscoveryEvents[K]): void {
    if (this.early !== undefined) {
      if (this.early.length >= 4096) {
        this.earlyOverflow = true;
        this.early.length = 0;
      }
      if (!this.earlyOverflow) this.early.push([event, args[0]]);
      return;
    }
    try {
      (this.emit as (event: K, ...args: DiscoveryEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.log('discovery.listener-failed', { event, error: error instanceof Error ? error.message : String(error) });
    }
  }

  private async openSocket(link: Link, family: 4 | 6): Promise<Socket> {
    const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', reuseAddr: true, ...(family === 6 ? { ipv6Only: true } : {}) });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ port: MDNS_PORT, address: family === 4 ? '0.0.0.0' : '::' }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      const local = family === 4 ? (link.v4[0]?.address ?? '') : `::%${link.name}`;
      socket.addMembership(family === 4 ? MDNS_V4 : MDNS_V6, local);
      socket.setMulticastInterface(local);
      socket.setMulticastTTL(255);
      socket.setTTL(255);
      socket.setMulticastLoopback(true);
    } catch (error) {
      closeSocket(socket);
      throw new EbpError('NETWORK_SETUP_FAILED', `discovery: cannot use UDP port ${MDNS_PORT} (IPv${family}) on ${link.name}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
        hint: 'another program may hold UDP port 5353 exclusively; avahi-daemon and Bonjour share it',
      });
    }
    socket.on('error', (error) => { this.log('discovery.socket-error', { interface: link.name, family, error: error.message }); });
    socket.on('message', (packet, info) => {
      const sockets = this.sockets.get(link.name);
      if (sockets === undefined) return;
      if (!sourceOnLink(sockets.link, info.address, family)) {
        this.offLink += 1;
        return;
      }
      this.core.receive(link.name, packet, { address: info.address, port: info.port });
    });
    return socket;
  }

  private async openLink(link: Link): Promise<void> {
    const v4 = link.v4.length > 0 ? await this.openSocket(link, 4) : undefined;
    let v6: Socket | undefined;
    try {
      v6 = link.v6.length > 0 && (this.options.ipv6 ?? true) ? await this.openSocket(link, 6) : undefined;
    } catch (error) {
      closeSocket(v4);
      throw error;
    }
    this.sockets.set(link.name, { link, v4, v6 });
  }

  private async rescan(): Promise<void> {
    if (this.rescanning || this.closed !== undefined) return;
    this.rescanning = true;
    try {
      const links = selectLinks(this.options.interfaces, this.options.ipv6 ?? true);
      const wanted = new Map(links.map((link) => [link.name, link]));
      let changed = false;
      for (const [name, sockets] of this.sockets) {
        const link = wanted.get(name);
        const sameFamilies = link !== undefined && (link.v4.length > 0) === (sockets.v4 !== undefined) && (link.v6.length > 0) === (sockets.v6 !== undefined);
        const sameFirst4 = link?.v4[0]?.address === sockets.link.v4[0]?.address;
        if (link === undefined || !sameFamilies || !sameFirst4) {
          closeSocket(sockets.v4);
          closeSocket(sockets.v6);
          this.sockets.delete(name);
          changed = true;
        } else if (JSON.stringify(link) !== JSON.stringify(sockets.link)) {
          sockets.link = link;
          changed = true;
        }
      }
      for (const link of links) {
        if (this.sockets.has(link.name)) continue;
        try {
          await this.openLink(link);
          changed = true;
        } catch (error) {
          this.log('discovery.interface-failed', { interface: link.name, error: error instanceof Error ? error.message : String(error) });
        }
      }
      if (this.isClosed()) {
        for (const sockets of this.sockets.values()) {
          closeSocket(sockets.v4);
          closeSocket(sockets.v6);
        }
        return;
      }
      if (changed) {
        this.log('discovery.interfaces', { interfaces: [...this.sockets.keys()] });
        this.core.setLinks([...this.sockets.values()].map((sockets) => sockets.link));
      }
    } catch (error) {
      this.log('discovery.rescan-failed', { error: error instanceof Error ? error.message : String(error) });
    } finally {
      this.rescanning = false;
    }
  }

  private send(link: string, packet: Buffer, to?: Destination): void {
    const sockets = this.sockets.get(link);
    if (sockets === undefined) return;
    const targets: [Socket, number, string][] = [];
    if (to !== undefined) {
      const socket = to.address.includes(':') ? sockets.v6 : sockets.v4;
      if (socket !== undefined) targets.push([socket, to.port, to.address]);
    } else {
      if (sockets.v4 !== undefined) targets.push([sockets.v4, MDNS_PORT, MDNS_V4]);
      if (sockets.v6 !== undefined) targets.push([sockets.v6, MDNS_PORT, MDNS_V6]);
    }
    for (const [socket, port, address] of targets) {
      this.inFlight += 1;
      try {
        socket.send(packet, port, address, (error) => { this.sent(link, error); });
      } catch (error) {
        this.sent(link, error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  private sent(link: string, error: Error | null): void {
    this.inFlight -= 1;
    if (error !== null) {
      this.sendErrors += 1;
      const now = Date.now();
      if (now - this.lastSendErrorLog > 10_000) {
        this.lastSendErrorLog = now;
        this.log('discovery.send-failed', { interface: link, error: error.message });
      }
    }
    if (this.inFlight === 0 && this.drained !== undefined) {
      const drained = this.drained;
      this.drained = undefined;
      drained();
    }
  }
}
