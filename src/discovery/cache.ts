// The browse side's record cache and peer table (RFC 6762 §5.2, §10): PTR records of our service
// type, SRV/TXT of those instances, A/AAAA of their SRV targets, kept per link with TTL expiry,
// cache-flush handling, goodbyes, refresh queries at 80/85/90/95 % of the TTL and queries for
// whatever is missing. Pure logic with an injected clock; the caller feeds decoded records and
// runs `sweep` at `nextDeadline()`. Records about anything else are not stored at all.
//
// Bounds: at most CACHE_LIMITS.maxInstances instances (the peer table) over all links and 64 per
// introducing source address and link, 4 SRV and 2 TXT records per instance, 16 addresses per
// host, hosts only while a live SRV points at them.
import { foldLabel, instanceFqdn, instanceOf, nameKey, nameText, SERVICE_NAME, sameName, displayInstance, escapeLabel, sanitizeText } from './names.js';
import { parseTxt, type ParsedTxt, type PeerTxt } from './txt.js';
import { checkName, CLASS_IN, TYPE, type Name, type Question, type ResourceRecord } from './wire.js';
import { isLinkLocal6 } from './interfaces.js';

export interface DiscoveredPeer {
  /**
   * Stable key: the instance name folded to lower case (ASCII only, as DNS compares names), '@',
   * the interface it was found on. mDNS names are unique per link only, so the same instance
   * seen on two links is two entries (with the same `txt.id`).
   */
  readonly key: string;
  /** Service instance name for display (control characters replaced, ≤ 63 bytes). */
  readonly instance: string;
  /** SRV target, e.g. "alice-3f2a1b.local" (sanitized). */
  readonly host: string;
  /** A/AAAA of the target on this link; IPv6 link-local ones carry "%<interface>". At most 16. */
  readonly addresses: readonly string[];
  readonly port: number;
  readonly txt: Partial<PeerTxt> & { readonly raw: Readonly<Record<string, string>> };
  /** All of our TXT fields are present and valid. */
  readonly verified: boolean;
  readonly interfaces: readonly string[];
  /** Time (ms since the epoch) the newest of its records was received. */
  readonly lastSeen: number;
}

export const CACHE_LIMITS = {
  maxInstances: 1024,
  /** Instances one source address may introduce on one link (so one host cannot fill the table). */
  maxInstancesPerSource: 64,
  maxSrvPerInstance: 4,
  maxTxtPerInstance: 2,
  maxAddressesPerHost: 16,
  /** Longest TTL we honour (seconds): RFC 6762's longest recommended is 4500 s. */
  maxTtlSeconds: 4500,
  /** A peer without TXT yet is reported after this long anyway (unverified). */
  txtWaitMs: 1000,
  /**
   * A goodbye (TTL 0) removes the record this long after it arrives. RFC 6762 §10.1 says one
   * second; less, so that a closed peer is gone from others within one second even with the
   * sweep's 100 ms granularity on top.
   */
  goodbyeGraceMs: 700,
  /** Cache-flush: older records of the same name and type expire this long after (RFC §10.2). */
  flushGraceMs: 1000,
  /** Longest interval between queries for something still missing. */
  maxResolveIntervalMs: 60_000,
} as const;

export type PeerEventKind = 'added' | 'updated' | 'removed';

interface Timed {
  receivedAt: number;
  ttlMs: number;
  expiresAt: number;
  /** Refresh queries sent for this copy (0..4; 4 = none to send any more). */
  refreshStep: number;
  refreshAt: number;
}

interface SrvEntry extends Timed {
  readonly rkey: string;
  readonly port: number;
  readonly target: Name;
  readonly targetKey: string;
}

interface TxtEntry extends Timed {
  readonly rkey: string;
  readonly parsed: ParsedTxt;
}

interface AddrEntry extends Timed {
  readonly address: string;
  readonly family: 4 | 6;
}

interface InstanceState {
  readonly key: string;
  /** Source address of the packet that introduced it ('' when unknown). */
  readonly source: string;
  readonly label: string;
  readonly fqdn: Name;
  readonly firstSeen: number;
  ptr: Timed | undefined;
  srv: SrvEntry[];
  txt: TxtEntry[];
  resolveAt: number;
  resolveTries: number;
  emitted: DiscoveredPeer | undefined;
  signature: string;
}

interface HostState {
  readonly name: Name;
  addrs: AddrEntry[];
  resolveAt: number;
  resolveTries: number;
}

interface LinkCache {
  readonly instances: Map<string, InstanceState>;
  /** Live instances per introducing source address. */
  readonly perSource: Map<string, number>;
  readonly hosts: Map<string, HostState>;
}

export interface CacheOptions {
  /** Monotonic-ish milliseconds; also used for lastSeen. */
  readonly now: () => number;
  readonly random?: () => number;
  readonly onEvent: (kind: PeerEventKind, peer: DiscoveredPeer) => void;
}

export interface CacheSize {
  readonly instances: number;
  readonly hosts: number;
  readonly records: number;
}

const REFRESH_STEPS = 4;

/** Names we may have to send back in questions (labels decoded lossily can outgrow 63 bytes). */
function encodable(name: Name): boolean {
  try {
    checkName(name);
    return true;
  } catch {
    return false;
  }
}

export class PeerCache {
  private readonly links = new Map<string, LinkCache>();
  private readonly self = new Set<string>();
  private instanceCount = 0;
  private deadline = Number.POSITIVE_INFINITY;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly onEvent: (kind: PeerEventKind, peer: DiscoveredPeer) => void;
  /** Instances refused because the table was full (for diagnostics). */
  refused = 0;

  constructor(options: CacheOptions) {
    this.now = options.now;
    this.random = options.random ?? Math.random;
    this.onEvent = options.onEvent;
  }

  /** The earliest time `sweep` has something to do. */
  nextDeadline(): number {
    return this.deadline;
  }

  /** Our own instance labels: never reported as peers. */
  setSelf(labels: readonly string[]): void {
    this.self.clear();
    for (const label of labels) this.self.add(foldLabel(label));
    for (const [link, cache] of this.links) for (const instance of cache.instances.values()) this.evaluate(link, instance);
  }

  /** Forgets a link (interface gone): its peers are removed. */
  dropLink(link: string): void {
    const cache = this.links.get(link);
    if (cache === undefined) return;
    for (const instance of cache.instances.values()) {
      if (instance.emitted !== undefined) this.onEvent('removed', instance.emitted);
      this.instanceCount -= 1;
    }
    this.links.delete(link);
  }

  size(): CacheSize {
    let hosts = 0;
    let records = 0;
    for (const cache of this.links.values()) {
      hosts += cache.hosts.size;
      for (const instance of cache.instances.values()) records += (instance.ptr === undefined ? 0 : 1) + instance.srv.length + instance.txt.length;
      for (const host of cache.hosts.values()) records += host.addrs.length;
    }
    return { instances: this.instanceCount, hosts, records };
  }

  /** Current peers (not ourselves), fresh snapshots of those reported as added. */
  peers(): DiscoveredPeer[] {
    const out: DiscoveredPeer[] = [];
    const now = this.now();
    for (const [link, cache] of this.links) {
      for (const instance of cache.instances.values()) {
        if (instance.emitted === undefined) continue;
        const peer = this.snapshot(link, cache, instance, now);
        if (peer !== undefined) out.push(peer);
      }
    }
    return out;
  }

  /** PTR records worth listing as known answers in our browse query (over half their TTL left). */
  knownAnswers(link: string): ResourceRecord[] {
    const cache = this.links.get(link);
    if (cache === undefined) return [];
    const now = this.now();
    const out: ResourceRecord[] = [];
    for (const instance of cache.instances.values()) {
      const ptr = instance.ptr;
      if (ptr === undefined) continue;
      const left = ptr.expiresAt - now;
      if (left * 2 < ptr.ttlMs) continue;
      out.push({ name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: Math.floor(left / 1000), data: { kind: 'PTR', target: instance.fqdn } });
    }
    return out;
  }

  /** Takes the records of one response (answers and additionals) received on `link` from `source`. */
  ingest(link: string, records: readonly ResourceRecord[], source = ''): void {
    const now = this.now();
    let cache = this.links.get(link);
    if (cache === undefined) {
      cache = { instances: new Map(), hosts: new Map(), perSource: new Map() };
      this.links.set(link, cache);
    }
    const touched = new Set<InstanceState>();
    // Pass 1: PTR records naming instances of our service type.
    for (const record of records) {
      if (record.cls !== CLASS_IN || record.data.kind !== 'PTR' || !sameName(record.name, SERVICE_NAME)) continue;
      const label = instanceOf(record.data.target);
      if (label === undefined || !encodable(record.data.target)) continue;
      const key = foldLabel(label);
      let instance = cache.instances.get(key);
      if (record.ttl === 0) {
        if (instance?.ptr !== undefined) {
          this.goodbye(instance.ptr, now);
          touched.add(instance);
        }
        continue;
      }
      if (instance === undefined) {
        const fromSource = cache.perSource.get(source) ?? 0;
        if (this.instanceCount >= CACHE_LIMITS.maxInstances || (source !== '' && fromSource >= CACHE_LIMITS.maxInstancesPerSource)) {
          this.refused += 1;
          continue;
        }
        if (source !== '') cache.perSource.set(source, fromSource + 1);
        instance = {
          key,
          source,
          label,
          fqdn: instanceFqdn(label),
          firstSeen: now,
          ptr: undefined,
          srv: [],
          txt: [],
          resolveAt: now + 100,
          resolveTries: 0,
          emitted: undefined,
          signature: '',
        };
        cache.instances.set(key, instance);
        this.instanceCount += 1;
        this.note(instance.resolveAt);
      }
      instance.ptr = this.fresh(record.ttl, now);
      touched.add(instance);
    }
    // Pass 2: SRV and TXT of instances we know.
    for (const record of records) {
      if (record.cls !== CLASS_IN || (record.data.kind !== 'SRV' && record.data.kind !== 'TXT')) continue;
      const label = instanceOf(record.name);
      const instance = label === undefined ? undefined : cache.instances.get(foldLabel(label));
      if (instance?.ptr === undefined) continue;
      touched.add(instance);
      if (record.data.kind === 'SRV') {
        const data = record.data;
        if (!encodable(data.target)) continue;
        const targetKey = nameKey(data.target);
        const rkey = `${data.port} ${targetKey}`;
        instance.srv = this.upsert(instance.srv, rkey, record, now, CACHE_LIMITS.maxSrvPerInstance, (timed) => ({
          ...timed,
          rkey,
          port: data.port,
          target: data.target,
          targetKey,
        }));
        if (record.ttl > 0 && !cache.hosts.has(targetKey)) {
          cache.hosts.set(targetKey, { name: data.target, addrs: [], resolveAt: now + 100, resolveTries: 0 });
          this.note(now + 100);
        }
      } else {
        const strings = record.data.strings;
        const rkey = strings.map((s) => s.toString('hex')).join(',');
        instance.txt = this.upsert(instance.txt, rkey, record, now, CACHE_LIMITS.maxTxtPerInstance, (timed) => ({
          ...timed,
          rkey,
          parsed: parseTxt(strings),
        }));
      }
    }
    // Pass 3: addresses of hosts that a known SRV points at.
    const touchedHosts = new Set<string>();
    for (const record of records) {
      if (record.cls !== CLASS_IN || (record.data.kind !== 'A' && record.data.kind !== 'AAAA')) continue;
      const hostKey = nameKey(record.name);
      const host = cache.hosts.get(hostKey);
      if (host === undefined) continue;
      const address = record.data.address;
      const family = record.data.kind === 'A' ? 4 : 6;
      host.addrs = this.upsert(host.addrs, address, record, now, CACHE_LIMITS.maxAddressesPerHost, (timed) => ({ ...timed, address, family }));
      touchedHosts.add(hostKey);
    }
    if (touchedHosts.size > 0) {
      for (const instance of cache.instances.values()) {
        if (instance.srv.some((srv) => touchedHosts.has(srv.targetKey))) touched.add(instance);
      }
    }
    for (const instance of touched) this.evaluate(link, instance);
  }

  /**
   * Expires records, reports changes, and returns the questions due now per link: refreshes of
   * records at 80/85/90/95 % of their TTL and queries for missing SRV/TXT/addresses.
   */
  sweep(): Map<string, Question[]> {
    const now = this.now();
    const due = new Map<string, Map<string, Question>>();
    const ask = (link: string, name: Name, type: number): void => {
      let questions = due.get(link);
      if (questions === undefined) {
        questions = new Map();
        due.set(link, questions);
      }
      questions.set(`${nameKey(name)}|${type}`, { name, type, cls: CLASS_IN, qu: false });
    };
    let deadline = Number.POSITIVE_INFINITY;
    const consider = (time: number): void => {
      if (time < deadline) deadline = time;
    };
    for (const [link, cache] of this.links) {
      const live = (entry: Timed): boolean => entry.expiresAt > now;
      const refresh = (entry: Timed, name: Name, type: number): void => {
        if (entry.refreshStep < REFRESH_STEPS && entry.refreshAt <= now) {
          ask(link, name, type);
          entry.refreshStep += 1;
          entry.refreshAt = this.refreshTime(entry);
        }
        consider(entry.expiresAt);
        if (entry.refreshStep < REFRESH_STEPS) consider(entry.refreshAt);
      };
      const referenced = new Set<string>();
      for (const [key, instance] of cache.instances) {
        const before = instance.ptr !== undefined ? 1 + instance.srv.length + instance.txt.length : -1;
        if (instance.ptr !== undefined && !live(instance.ptr)) instance.ptr = undefined;
        instance.srv = instance.srv.filter(live);
        instance.txt = instance.txt.filter(live);
        const after = instance.ptr !== undefined ? 1 + instance.srv.length + instance.txt.length : -1;
        if (instance.ptr === undefined) {
          // Without its PTR an instance is gone from the browse result.
          if (instance.emitted !== undefined) this.onEvent('removed', instance.emitted);
          cache.instances.delete(key);
          this.instanceCount -= 1;
          const fromSource = (cache.perSource.get(instance.source) ?? 1) - 1;
          if (fromSource <= 0) cache.perSource.delete(instance.source);
          else cache.perSource.set(instance.source, fromSource);
          continue;
        }
        refresh(instance.ptr, SERVICE_NAME, TYPE.PTR);
        for (const srv of instance.srv) {
          refresh(srv, instance.fqdn, TYPE.SRV);
          referenced.add(srv.targetKey);
        }
        for (const txt of instance.txt) refresh(txt, instance.fqdn, TYPE.TXT);
        if (instance.srv.length === 0 || instance.txt.length === 0) {
          if (instance.resolveAt <= now) {
            if (instance.srv.length === 0) ask(link, instance.fqdn, TYPE.SRV);
            if (instance.txt.length === 0) ask(link, instance.fqdn, TYPE.TXT);
            instance.resolveTries += 1;
            instance.resolveAt = now + this.backoff(instance.resolveTries);
          }
          consider(instance.resolveAt);
        } else {
          instance.resolveTries = 0;
        }
        if (instance.emitted === undefined && instance.txt.length === 0) consider(instance.firstSeen + CACHE_LIMITS.txtWaitMs);
        if (before !== after || instance.emitted === undefined) this.evaluate(link, instance, now);
      }
      for (const [key, host] of cache.hosts) {
        if (!referenced.has(key)) {
          cache.hosts.delete(key);
          continue;
        }
        const count = host.addrs.length;
        host.addrs = host.addrs.filter(live);
        for (const addr of host.addrs) refresh(addr, host.name, addr.family === 4 ? TYPE.A : TYPE.AAAA);
        if (host.addrs.length === 0) {
          if (host.resolveAt <= now) {
            ask(link, host.name, TYPE.A);
            ask(link, host.name, TYPE.AAAA);
            host.resolveTries += 1;
            host.resolveAt = now + this.backoff(host.resolveTries);
          }
          consider(host.resolveAt);
        } else {
          host.resolveTries = 0;
        }
        if (count !== host.addrs.length) {
          for (const instance of cache.instances.values()) {
            if (instance.srv.some((srv) => srv.targetKey === key)) this.evaluate(link, instance, now);
          }
        }
      }
    }
    this.deadline = deadline;
    const out = new Map<string, Question[]>();
    for (const [link, questions] of due) out.set(link, [...questions.values()]);
    return out;
  }

  // -------------------------------------------------------------------------------------------

  private note(time: number): void {
    if (time < this.deadline) this.deadline = time;
  }

  private backoff(tries: number): number {
    return Math.min(CACHE_LIMITS.maxResolveIntervalMs, 1000 * 2 ** Math.min(tries - 1, 16));
  }

  private refreshTime(entry: Timed): number {
    const fraction = 0.8 + 0.05 * entry.refreshStep + this.random() * 0.02;
    return entry.receivedAt + entry.ttlMs * fraction;
  }

  private fresh(ttl: number, now: number): Timed {
    const ttlMs = Math.min(ttl, CACHE_LIMITS.maxTtlSeconds) * 1000;
    const timed: Timed = { receivedAt: now, ttlMs, expiresAt: now + ttlMs, refreshStep: 0, refreshAt: 0 };
    timed.refreshAt = this.refreshTime(timed);
    this.note(timed.refreshAt);
    this.note(timed.expiresAt);
    return timed;
  }

  private goodbye(entry: Timed, now: number): void {
    entry.expiresAt = Math.min(entry.expiresAt, now + CACHE_LIMITS.goodbyeGraceMs);
    entry.refreshStep = REFRESH_STEPS;
    this.note(entry.expiresAt);
  }

  /** Inserts or refreshes one record of a set keyed by rkey, with cache-flush and a cap. */
  private upsert<T extends Timed & ({ readonly rkey: string } | { readonly address: string })>(
    list: T[],
    rkey: string,
    record: ResourceRecord,
    now: number,
    cap: number,
    make: (timed: Timed) => T,
  ): T[] {
    const keyOf = (entry: T): string => ('rkey' in entry ? entry.rkey : entry.address);
    const existing = list.find((entry) => keyOf(entry) === rkey);
    if (record.ttl === 0) {
      if (existing !== undefined) this.goodbye(existing, now);
      return list;
    }
    if (record.flush) {
      for (const entry of list) {
        if (entry !== existing && now - entry.receivedAt > CACHE_LIMITS.flushGraceMs) {
          entry.expiresAt = Math.min(entry.expiresAt, now + CACHE_LIMITS.flushGraceMs);
          entry.refreshStep = REFRESH_STEPS;
          this.note(entry.expiresAt);
        }
      }
    }
    const timed = this.fresh(record.ttl, now);
    if (existing !== undefined) {
      Object.assign(existing, timed);
      return list;
    }
    const next = [...list, make(timed)];
    if (next.length > cap) {
      // Evict the copy that would expire first.
      let victim = 0;
      next.forEach((entry, i) => {
        if (entry.expiresAt < (next[victim]?.expiresAt ?? Number.POSITIVE_INFINITY)) victim = i;
      });
      next.splice(victim, 1);
    }
    return next;
  }

  private newest<T extends Timed>(list: readonly T[], now: number): T | undefined {
    let best: T | undefined;
    for (const entry of list) if (entry.expiresAt > now && (best === undefined || entry.receivedAt >= best.receivedAt)) best = entry;
    return best;
  }

  private snapshot(link: string, cache: LinkCache, instance: InstanceState, now: number): DiscoveredPeer | undefined {
    const ptr = instance.ptr;
    if (ptr === undefined || ptr.expiresAt <= now) return undefined;
    const srv = this.newest(instance.srv, now);
    if (srv === undefined) return undefined;
    const host = cache.hosts.get(srv.targetKey);
    const addrs = (host?.addrs ?? []).filter((addr) => addr.expiresAt > now);
    if (addrs.length === 0) return undefined;
    const txt = this.newest(instance.txt, now);
    const parsed = txt?.parsed ?? parseTxt([]);
    let lastSeen = Math.max(ptr.receivedAt, srv.receivedAt, txt?.receivedAt ?? 0);
    for (const addr of addrs) lastSeen = Math.max(lastSeen, addr.receivedAt);
    const addresses = [...addrs]
      .sort((a, b) => a.family - b.family)
      .map((addr) => (addr.family === 6 && isLinkLocal6(addr.address) ? `${addr.address}%${link}` : addr.address));
    return {
      key: `${escapeLabel(instance.key)}@${link}`,
      instance: displayInstance(instance.label),
      host: sanitizeText(nameText(srv.target).slice(0, -1)),
      addresses,
      port: srv.port,
      txt: { ...parsed.fields, raw: parsed.raw },
      verified: parsed.verified,
      interfaces: [link],
      lastSeen: Math.round(lastSeen),
    };
  }

  private evaluate(link: string, instance: InstanceState, now = this.now()): void {
    const cache = this.links.get(link);
    if (cache === undefined) return;
    const peer = this.self.has(instance.key) ? undefined : this.snapshot(link, cache, instance, now);
    if (peer === undefined) {
      if (instance.emitted !== undefined) {
        const gone = instance.emitted;
        instance.emitted = undefined;
        instance.signature = '';
        this.onEvent('removed', gone);
      }
      return;
    }
    const hasTxt = instance.txt.some((txt) => txt.expiresAt > now);
    if (instance.emitted === undefined && !hasTxt && now - instance.firstSeen < CACHE_LIMITS.txtWaitMs) {
      this.note(instance.firstSeen + CACHE_LIMITS.txtWaitMs);
      return;
    }
    const signature = JSON.stringify([peer.instance, peer.host, peer.port, peer.addresses, peer.txt.raw, peer.verified]);
    const kind: PeerEventKind | undefined = instance.emitted === undefined ? 'added' : signature !== instance.signature ? 'updated' : undefined;
    instance.emitted = peer;
    instance.signature = signature;
    if (kind !== undefined) this.onEvent(kind, peer);
  }
}

/**
 * Live instances that claim the same identity (`txt.id`) under different instance names: each
 * such peer is returned (all members of every clashing group). The same instance seen on two
 * links is not a clash. Whether either is genuine is for the SSH host-key check to decide.
 */
export function sameIdentityConflict(peers: readonly DiscoveredPeer[]): DiscoveredPeer[] {
  const byId = new Map<string, DiscoveredPeer[]>();
  for (const peer of peers) {
    const id = peer.txt.id;
    if (id === undefined) continue;
    const group = byId.get(id) ?? [];
    group.push(peer);
    byId.set(id, group);
  }
  const out: DiscoveredPeer[] = [];
  for (const group of byId.values()) {
    const names = new Set(group.map((peer) => foldLabel(peer.instance)));
    if (names.size > 1) out.push(...group);
  }
  return out;
}
