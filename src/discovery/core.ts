// The protocol engine of discovery, independent of sockets: a responder for our service (RFC 6762
// §8 probing with simultaneous-probe tie-breaking, conflict renaming, announcing, §6 answering with
// known-answer suppression, QU and legacy unicast, goodbyes) and the browse side (continuous PTR
// querying with back-off, resolution of what is missing, cache refresh) over a PeerCache.
//
// Everything that arrives goes through `receive`, which never throws: packets are rate-limited
// per source and overall, decoded under hard limits, and any failure is counted and dropped.
import { EbpError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/log.js';
import { PeerCache, type DiscoveredPeer, type PeerEventKind } from './cache.js';
import type { Link } from './interfaces.js';
import {
  checkInstanceName,
  hostFqdn,
  hostLabelBase,
  instanceFqdn,
  instanceOf,
  nameKey,
  nameText,
  numberedHost,
  numberedInstance,
  sameName,
  SERVICE_NAME,
  SERVICES_ENUMERATION,
} from './names.js';
import { encodePeerTxt, type PeerTxt } from './txt.js';
import {
  CLASS_ANY,
  CLASS_IN,
  checkName,
  decodeMessage,
  encodeMessage,
  FLAG_AUTHORITATIVE,
  FLAG_RESPONSE,
  FLAG_TRUNCATED,
  isResponse,
  LIMITS,
  type Message,
  nameWireLength,
  opcode,
  type Question,
  rcode,
  rdataBytes,
  recordWireLength,
  type ResourceRecord,
  TYPE,
} from './wire.js';

export const MDNS_PORT = 5353;
export const MDNS_V4 = '224.0.0.251';
export const MDNS_V6 = 'ff02::fb';
/** Default TTL of all our records, seconds (see README of this folder for the bound it gives). */
export const DEFAULT_TTL_SECONDS = 75;

export const TIMING = {
  probes: 3,
  probeIntervalMs: 250,
  /** Announcements after probing: at these offsets (RFC 6762 §8.3: ≥ 2, one second apart, then doubling). */
  announceAtMs: [0, 1000, 3000],
  /** Announcements after a TXT change. */
  updateAtMs: [0, 1000],
  /** After losing a simultaneous-probe tie-break (RFC 6762 §8.2). */
  deferMs: 1000,
  conflictWindowMs: 10_000,
  conflictBurst: 15,
  conflictPauseMs: 5000,
  browseFirstMs: 1000,
  browseMaxMs: 60_000,
  /** A record is not multicast again on a link within this long (RFC 6762 §6), 250 ms to defend. */
  multicastIntervalMs: 1000,
  defendIntervalMs: 250,
  /** Own records that changed still count as ours for this long (copies still in flight). */
  formerOwnMs: 5000,
  minSweepGapMs: 100,
} as const;

export const RATE = {
  perSourcePerSecond: 50,
  perSourceBurst: 100,
  totalPerSecond: 500,
  totalBurst: 1000,
  maxSources: 4096,
} as const;

/** Multicast packets we build are kept under this size (typical Ethernet MTU minus headers). */
const PACKET_BUDGET = 1400;

export interface Destination {
  readonly address: string;
  readonly port: number;
}

export interface CoreTransport {
  /** Sends on the link: to its multicast group on both families, or to one unicast destination. */
  send(link: string, packet: Buffer, to?: Destination): void;
}

export interface CoreEvents {
  readonly peer: (kind: PeerEventKind, peer: DiscoveredPeer) => void;
  readonly renamed: (name: string) => void;
}

export interface CoreOptions {
  readonly name: string;
  readonly port: number;
  readonly txt: PeerTxt;
  readonly announce: boolean;
  readonly browse: boolean;
  readonly ttlSeconds: number;
  /** Machine host name, only to derive our host label. */
  readonly hostname: string;
  readonly log?: Logger;
  readonly now?: () => number;
  readonly random?: () => number;
}

export interface CoreStats {
  received: number;
  rateLimited: number;
  malformed: number;
  ignored: number;
  errors: number;
  sent: number;
  conflicts: number;
}

interface OwnRecord {
  readonly record: ResourceRecord;
  readonly unique: boolean;
  readonly key: string;
}

interface Pending {
  readonly answers: Map<string, OwnRecord>;
  readonly additionals: Map<string, OwnRecord>;
  minIntervalMs: number;
  at: number;
  timer: NodeJS.Timeout;
}

interface LinkState {
  link: Link;
  records: OwnRecord[];
  readonly lastMulticast: Map<string, number>;
  pending: Pending | undefined;
  browseTimer: NodeJS.Timeout | undefined;
  browseInterval: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

type Phase = 'off' | 'probing' | 'announcing' | 'established' | 'closed';

/** `name|type|rdata-hex` for a record, or undefined when its data cannot be re-encoded. */
export function recordKey(record: ResourceRecord): string | undefined {
  try {
    return `${nameKey(record.name)}|${record.type}|${rdataBytes(record.data).toString('hex')}`;
  } catch {
    return undefined;
  }
}

/** RFC 6762 §8.2 order of two record sets; < 0 when `ours` is lexicographically earlier (we lose). */
export function compareRecordSets(ours: readonly ResourceRecord[], theirs: readonly ResourceRecord[]): number {
  const sortable = (records: readonly ResourceRecord[]): [number, number, Buffer][] =>
    records
      .map((r): [number, number, Buffer] => [r.cls, r.type, rdataBytes(r.data)])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1] || Buffer.compare(a[2], b[2]));
  const a = sortable(ours);
  const b = sortable(theirs);
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined) break;
    const order = x[0] - y[0] || x[1] - y[1] || Buffer.compare(x[2], y[2]);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

export class DiscoveryCore {
  readonly stats: CoreStats = { received: 0, rateLimited: 0, malformed: 0, ignored: 0, errors: 0, sent: 0, conflicts: 0 };
  private readonly options: CoreOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly cache: PeerCache | undefined;
  private readonly links = new Map<string, LinkState>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly total: Bucket;
  private readonly formerOwn = new Map<string, number>();
  private ownKeys = new Set<string>();
  private phase: Phase = 'off';
  private generation = 0;
  private announcedOnce = false;
  private instanceBase: string;
  private instanceN = 1;
  private readonly hostBase: string;
  private hostN = 1;
  private txtStrings: Buffer[];
  private lastEstablished: string | undefined;
  private conflictTimes: number[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = Number.POSITIVE_INFINITY;
  private lastSweep = Number.NEGATIVE_INFINITY;
  private establishedWaiters: (() => void)[] = [];
  private lastErrorLog = Number.NEGATIVE_INFINITY;

  constructor(
    options: CoreOptions,
    private readonly transport: CoreTransport,
    private readonly events: CoreEvents,
  ) {
    this.options = options;
    this.log = options.log ?? silentLogger;
    this.now = options.now ?? (() => performance.timeOrigin + performance.now());
    this.random = options.random ?? Math.random;
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new EbpError('CONFIG_INVALID', `discovery: port ${String(options.port)} is not 1..65535`);
    }
    if (!Number.isInteger(options.ttlSeconds) || options.ttlSeconds < 1 || options.ttlSeconds > 4500) {
      throw new EbpError('CONFIG_INVALID', 'discovery: ttlSeconds must be an integer 1..4500');
    }
    this.instanceBase = checkInstanceName(options.name);
    this.hostBase = hostLabelBase(this.instanceBase, options.hostname, options.port);
    this.txtStrings = encodePeerTxt(options.txt);
    this.total = { tokens: RATE.totalBurst, at: this.now() };
    this.cache = options.browse
      ? new PeerCache({ now: this.now, random: this.random, onEvent: (kind, peer) => { this.events.peer(kind, peer); } })
      : undefined;
    this.cache?.setSelf([this.instanceName]);
  }

  get instanceName(): string {
    return numberedInstance(this.instanceBase, this.instanceN);
  }

  get hostLabel(): string {
    return numberedHost(this.hostBase, this.hostN);
  }

  get state(): Phase {
    return this.phase;
  }

  peers(): DiscoveredPeer[] {
    return this.cache?.peers() ?? [];
  }

  cacheSize(): ReturnType<PeerCache['size']> {
    return this.cache?.size() ?? { instances: 0, hosts: 0, records: 0 };
  }

  /** Starts (or updates) the set of links; (re)probes when links or their addresses change. */
  setLinks(links: readonly Link[]): void {
    if (this.phase === 'closed') return;
    let changed = false;
    const wanted = new Map(links.map((link) => [link.name, link]));
    for (const [name, state] of this.links) {
      if (wanted.has(name)) continue;
      if (state.browseTimer !== undefined) this.clear(state.browseTimer);
      if (state.pending !== undefined) this.clear(state.pending.timer);
      this.links.delete(name);
      this.cache?.dropLink(name);
    }
    for (const link of links) {
      const state = this.links.get(link.name);
      if (state === undefined) {
        const fresh: LinkState = { link, records: [], lastMulticast: new Map(), pending: undefined, browseTimer: undefined, browseInterval: TIMING.browseFirstMs };
        this.links.set(link.name, fresh);
        changed = true;
        if (this.options.browse && this.phase !== 'off') this.startBrowsing(fresh);
      } else if (JSON.stringify(state.link) !== JSON.stringify(link)) {
        state.link = link;
        changed = true;
      }
    }
    this.rebuild();
    if (changed && this.options.announce && this.phase !== 'off') this.startProbing(this.random() * 250);
  }

  /** Begins probing/announcing and browsing; resolves once our names are established. */
  start(): Promise<void> {
    if (this.phase !== 'off') return Promise.resolve();
    const established = new Promise<void>((resolve) => this.establishedWaiters.push(resolve));
    if (this.options.browse) for (const state of this.links.values()) this.startBrowsing(state);
    if (this.options.announce) {
      this.startProbing(this.random() * 250);
    } else {
      this.phase = 'established';
      this.resolveEstablished();
    }
    return established;
  }

  /** New TXT data: re-announced (twice, 1 s apart) when it differs from what we announce now. */
  updateTxt(txt: PeerTxt): void {
    const strings = encodePeerTxt(txt);
    if (strings.length === this.txtStrings.length && strings.every((text, i) => text.equals(this.txtStrings[i] ?? Buffer.alloc(0)))) return;
    this.txtStrings = strings;
    this.rebuild();
    if (this.phase === 'announcing' || this.phase === 'established') {
      this.generation += 1;
      this.announce(this.generation, TIMING.updateAtMs);
    }
  }

  rename(name: string): void {
    const checked = checkInstanceName(name);
    if (this.phase === 'closed') return;
    if (this.announcedOnce && (this.phase === 'announcing' || this.phase === 'established')) this.sendGoodbyes(true);
    const former = this.instanceName;
    this.instanceBase = checked;
    this.instanceN = 1;
    this.rebuild();
    // A voluntary rename: echoes of our own former announcement may still arrive for a moment
    // and must not come back as a peer. (A rename forced by a conflict does not come here: the
    // old name then belongs to someone else.)
    this.cache?.setSelf([this.instanceName, former]);
    const current = this.instanceName;
    setTimeout(() => {
      if (this.phase !== 'closed' && this.instanceName === current) this.cache?.setSelf([this.instanceName]);
    }, TIMING.formerOwnMs).unref();
    if (this.options.announce && this.phase !== 'off') this.startProbing(this.random() * 250);
  }

  /** Sends goodbyes (TTL 0) for everything we announced and stops all timers. */
  close(): void {
    if (this.phase === 'closed') return;
    if (this.announcedOnce) this.sendGoodbyes(false);
    this.phase = 'closed';
    this.generation += 1;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.sweepTimer = undefined;
    this.resolveEstablished();
  }

  /** Handles one datagram received on `link`. Never throws. */
  receive(linkName: string, packet: Buffer, source: Destination): void {
    try {
      this.stats.received += 1;
      const state = this.links.get(linkName);
      if (state === undefined || this.phase === 'closed') {
        this.stats.ignored += 1;
        return;
      }
      if (!this.allow(`${linkName}|${source.address}`)) {
        this.stats.rateLimited += 1;
        return;
      }
      let message: Message;
      try {
        message = decodeMessage(packet);
      } catch {
        this.stats.malformed += 1;
        return;
      }
      if (opcode(message) !== 0 || rcode(message) !== 0) {
        this.stats.ignored += 1;
        return;
      }
      if (isResponse(message)) {
        // RFC 6762 §6: responses not from port 5353 are not mDNS responses.
        if (source.port !== MDNS_PORT) {
          this.stats.ignored += 1;
          return;
        }
        this.onResponse(message);
        if (this.cache !== undefined && this.links.has(linkName)) {
          this.cache.ingest(linkName, [...message.answers, ...message.additionals], source.address);
          this.scheduleSweep();
        }
      } else {
        this.onQuery(state, message, source);
      }
    } catch (error) {
      this.stats.errors += 1;
      this.logError('discovery.receive-failed', error);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Our records

  private rebuild(): void {
    const ttl = this.options.ttlSeconds;
    const instance = instanceFqdn(this.instanceName);
    const host = hostFqdn(this.hostLabel);
    const now = this.now();
    for (const key of this.ownKeys) this.formerOwn.set(key, now + TIMING.formerOwnMs);
    const keys = new Set<string>();
    const own = (record: ResourceRecord, unique: boolean): OwnRecord => {
      const key = recordKey(record) ?? '';
      keys.add(key);
      return { record, unique, key };
    };
    for (const state of this.links.values()) {
      state.records = [
        own({ name: SERVICES_ENUMERATION, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl, data: { kind: 'PTR', target: SERVICE_NAME } }, false),
        own({ name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl, data: { kind: 'PTR', target: instance } }, false),
        own(
          { name: instance, type: TYPE.SRV, cls: CLASS_IN, flush: true, ttl, data: { kind: 'SRV', priority: 0, weight: 0, port: this.options.port, target: host } },
          true,
        ),
        own({ name: instance, type: TYPE.TXT, cls: CLASS_IN, flush: true, ttl, data: { kind: 'TXT', strings: this.txtStrings } }, true),
        ...state.link.v4.map((entry) =>
          own({ name: host, type: TYPE.A, cls: CLASS_IN, flush: true, ttl, data: { kind: 'A', address: entry.address } }, true),
        ),
        ...state.link.v6.map((entry) =>
          own({ name: host, type: TYPE.AAAA, cls: CLASS_IN, flush: true, ttl, data: { kind: 'AAAA', address: entry.address } }, true),
        ),
      ];
    }
    this.ownKeys = keys;
    for (const [key, until] of this.formerOwn) if (until <= now || keys.has(key)) this.formerOwn.delete(key);
  }

  private isOurs(record: ResourceRecord): boolean {
    const key = recordKey(record);
    if (key === undefined) return false;
    if (this.ownKeys.has(key)) return true;
    const until = this.formerOwn.get(key);
    return until !== undefined && until > this.now();
  }

  // ---------------------------------------------------------------------------------------------
  // Probing and announcing

  private startProbing(delayMs: number): void {
    if (this.phase === 'closed') return;
    this.generation += 1;
    const generation = this.generation;
    this.phase = 'probing';
    let sent = 0;
    const step = (): void => {
      if (generation !== this.generation) return;
      if (sent === TIMING.probes) {
        this.establish(generation);
        return;
      }
      for (const state of this.links.values()) this.sendProbe(state);
      sent += 1;
      this.later(TIMING.probeIntervalMs, step);
    };
    this.later(delayMs, step);
  }

  private sendProbe(state: LinkState): void {
    const instance = instanceFqdn(this.instanceName);
    const host = hostFqdn(this.hostLabel);
    const authorities = state.records
      .filter((own) => own.unique)
      .map((own) => ({ ...own.record, flush: false }));
    this.send(state.link.name, {
      id: 0,
      flags: 0,
      questions: [
        { name: instance, type: TYPE.ANY, cls: CLASS_IN, qu: false },
        { name: host, type: TYPE.ANY, cls: CLASS_IN, qu: false },
      ],
      answers: [],
      authorities,
      additionals: [],
    });
  }

  private establish(generation: number): void {
    const name = this.instanceName;
    if (this.lastEstablished !== name) {
      const first = this.lastEstablished === undefined;
      this.lastEstablished = name;
      this.log('discovery.established', { instance: name, host: `${this.hostLabel}.local` });
      if (!first || name !== this.instanceBase) this.events.renamed(name);
    }
    this.announce(generation, TIMING.announceAtMs);
    this.resolveEstablished();
  }

  private announce(generation: number, offsets: readonly number[]): void {
    this.phase = 'announcing';
    offsets.forEach((offset, index) => {
      this.later(offset, () => {
        if (generation !== this.generation) return;
        this.announcedOnce = true;
        for (const state of this.links.values()) {
          this.multicast(state, state.records, [], 0);
        }
        if (index === offsets.length - 1) this.phase = 'established';
      });
    });
  }

  private resolveEstablished(): void {
    const waiters = this.establishedWaiters;
    this.establishedWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private conflict(which: 'instance' | 'host', record: ResourceRecord): void {
    const now = this.now();
    this.stats.conflicts += 1;
    this.conflictTimes = this.conflictTimes.filter((time) => now - time < TIMING.conflictWindowMs);
    this.conflictTimes.push(now);
    const before = which === 'instance' ? this.instanceName : this.hostLabel;
    if (which === 'instance') this.instanceN += 1;
    else this.hostN += 1;
    const after = which === 'instance' ? this.instanceName : this.hostLabel;
    this.log('discovery.conflict', { which, name: before, renamedTo: after, record: nameText(record.name), type: record.type });
    this.rebuild();
    this.cache?.setSelf([this.instanceName]);
    const pause = this.conflictTimes.length >= TIMING.conflictBurst ? TIMING.conflictPauseMs : this.random() * 250;
    this.startProbing(pause);
  }

  /** Looks at a query during probing: someone else probing the same name (RFC 6762 §8.2). */
  private tiebreak(state: LinkState, message: Message): void {
    if (message.authorities.length === 0) return;
    for (const name of [instanceFqdn(this.instanceName), hostFqdn(this.hostLabel)]) {
      const theirs = message.authorities.filter((record) => record.cls === CLASS_IN && sameName(record.name, name));
      if (theirs.length === 0 || theirs.every((record) => this.isOurs(record))) continue;
      const ours = state.records.filter((own) => own.unique && sameName(own.record.name, name)).map((own) => own.record);
      let order: number;
      try {
        order = compareRecordSets(ours, theirs);
      } catch {
        continue;
      }
      if (order < 0) {
        this.log('discovery.probe-deferred', { name: nameText(name) });
        this.startProbing(TIMING.deferMs);
        return;
      }
    }
  }

  private onResponse(message: Message): void {
    if (!this.options.announce || (this.phase !== 'probing' && this.phase !== 'announcing' && this.phase !== 'established')) return;
    const instance = instanceFqdn(this.instanceName);
    const host = hostFqdn(this.hostLabel);
    for (const record of [...message.answers, ...message.additionals]) {
      if (record.ttl === 0 || record.cls !== CLASS_IN) continue;
      const isInstance = sameName(record.name, instance);
      const isHost = !isInstance && sameName(record.name, host);
      if (!isInstance && !isHost) continue;
      if (this.isOurs(record)) continue;
      if (this.phase === 'probing') {
        this.conflict(isInstance ? 'instance' : 'host', record);
        return;
      }
      const unique = isInstance ? record.type === TYPE.SRV || record.type === TYPE.TXT : record.type === TYPE.A || record.type === TYPE.AAAA;
      if (unique) {
        // RFC 6762 §9: back to probing; the other side defends and we rename then.
        this.stats.conflicts += 1;
        this.log('discovery.conflict-detected', { name: nameText(record.name), type: record.type });
        this.startProbing(0);
        return;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Answering

  private onQuery(state: LinkState, message: Message, source: Destination): void {
    if (!this.options.announce) return;
    if (this.phase === 'probing') {
      this.tiebreak(state, message);
      return;
    }
    if (this.phase !== 'announcing' && this.phase !== 'established') return;
    const legacy = source.port !== MDNS_PORT;
    const now = this.now();
    const knownAnswers = new Map<string, number>();
    for (const record of message.answers) {
      const key = recordKey(record);
      if (key !== undefined) knownAnswers.set(key, Math.max(record.ttl, knownAnswers.get(key) ?? 0));
    }
    const multicastAnswers = new Map<string, OwnRecord>();
    const unicastAnswers = new Map<string, OwnRecord>();
    let probe = false;
    for (const question of message.questions) {
      if (question.cls !== CLASS_IN && question.cls !== CLASS_ANY) continue;
      for (const own of state.records) {
        if (!sameName(own.record.name, question.name)) continue;
        if (question.type !== TYPE.ANY && question.type !== own.record.type) continue;
        if (own.unique && message.authorities.length > 0) probe = true;
        const known = knownAnswers.get(own.key);
        if (!legacy && known !== undefined && known * 2 >= own.record.ttl) continue;
        const last = state.lastMulticast.get(own.key);
        const recent = last !== undefined && now - last < (own.record.ttl * 1000) / 4;
        if (legacy || (question.qu && recent)) unicastAnswers.set(own.key, own);
        else multicastAnswers.set(own.key, own);
      }
    }
    if (unicastAnswers.size > 0) {
      const answers = [...unicastAnswers.values()];
      const additionals = this.additionalsFor(state, answers);
      const adjust = (own: OwnRecord): ResourceRecord =>
        legacy ? { ...own.record, flush: false, ttl: Math.min(own.record.ttl, 10) } : own.record;
      this.send(
        state.link.name,
        {
          id: legacy ? message.id : 0,
          flags: FLAG_RESPONSE | FLAG_AUTHORITATIVE,
          questions: legacy ? message.questions.filter((question) => this.encodable(question.name)) : [],
          answers: answers.map(adjust),
          authorities: [],
          additionals: additionals.map(adjust),
        },
        source,
      );
    }
    if (multicastAnswers.size > 0) {
      const answers = [...multicastAnswers.values()];
      const allUnique = answers.every((own) => own.unique);
      let delay = probe || allUnique ? 0 : 20 + this.random() * 100;
      if ((message.flags & FLAG_TRUNCATED) !== 0) delay = 400 + this.random() * 100;
      this.multicast(state, answers, this.additionalsFor(state, answers), delay, probe ? TIMING.defendIntervalMs : TIMING.multicastIntervalMs);
    }
  }

  private additionalsFor(state: LinkState, answers: readonly OwnRecord[]): OwnRecord[] {
    const have = new Set(answers.map((own) => own.key));
    const out = new Map<string, OwnRecord>();
    const addAll = (predicate: (record: ResourceRecord) => boolean): void => {
      for (const own of state.records) if (!have.has(own.key) && predicate(own.record)) out.set(own.key, own);
    };
    const instance = instanceFqdn(this.instanceName);
    const host = hostFqdn(this.hostLabel);
    for (const own of answers) {
      const record = own.record;
      if (record.type === TYPE.PTR && record.data.kind === 'PTR' && instanceOf(record.data.target) !== undefined) {
        addAll((r) => sameName(r.name, instance) || sameName(r.name, host));
      } else if (record.type === TYPE.SRV) {
        addAll((r) => sameName(r.name, host));
      }
    }
    return [...out.values()];
  }

  /** Queues records for a multicast response on a link (aggregating what comes within the delay). */
  private multicast(state: LinkState, answers: readonly OwnRecord[], additionals: readonly OwnRecord[], delayMs: number, minIntervalMs = 0): void {
    const now = this.now();
    let pending = state.pending;
    if (pending === undefined) {
      const fresh: Pending = { answers: new Map(), additionals: new Map(), minIntervalMs, at: now + delayMs, timer: this.later(delayMs, () => { this.flush(state); }) };
      state.pending = fresh;
      pending = fresh;
    } else {
      pending.minIntervalMs = Math.min(pending.minIntervalMs, minIntervalMs);
      if (now + delayMs < pending.at) {
        this.clear(pending.timer);
        pending.at = now + delayMs;
        pending.timer = this.later(delayMs, () => { this.flush(state); });
      }
    }
    for (const own of answers) pending.answers.set(own.key, own);
    for (const own of additionals) pending.additionals.set(own.key, own);
  }

  private flush(state: LinkState): void {
    const pending = state.pending;
    state.pending = undefined;
    if (pending === undefined || this.phase === 'closed') return;
    const now = this.now();
    const answers = [...pending.answers.values()].filter((own) => {
      const last = state.lastMulticast.get(own.key);
      return last === undefined || now - last >= pending.minIntervalMs;
    });
    if (answers.length === 0) return;
    const inAnswers = new Set(answers.map((own) => own.key));
    const additionals = [...pending.additionals.values()].filter((own) => !inAnswers.has(own.key));
    for (const own of answers) state.lastMulticast.set(own.key, now);
    this.send(state.link.name, {
      id: 0,
      flags: FLAG_RESPONSE | FLAG_AUTHORITATIVE,
      questions: [],
      answers: answers.map((own) => own.record),
      authorities: [],
      additionals: additionals.map((own) => own.record),
    });
  }

  /** Goodbyes for all our records, or (instanceOnly) for those naming our current instance. */
  private sendGoodbyes(instanceOnly: boolean): void {
    const instance = instanceFqdn(this.instanceName);
    for (const state of this.links.values()) {
      const records = state.records
        .filter((own) => {
          if (!instanceOnly) return true;
          const record = own.record;
          return sameName(record.name, instance) || (record.data.kind === 'PTR' && sameName(record.data.target, instance));
        })
        .map((own) => ({ ...own.record, ttl: 0 }));
      this.send(state.link.name, { id: 0, flags: FLAG_RESPONSE | FLAG_AUTHORITATIVE, questions: [], answers: records, authorities: [], additionals: [] });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Browsing

  private startBrowsing(state: LinkState): void {
    if (state.browseTimer !== undefined) this.clear(state.browseTimer);
    state.browseInterval = TIMING.browseFirstMs;
    const tick = (): void => {
      state.browseTimer = undefined;
      if (this.phase === 'closed' || this.links.get(state.link.name) !== state) return;
      this.sendQuery(state.link.name, [{ name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, qu: false }]);
      state.browseTimer = this.later(state.browseInterval, tick);
      state.browseInterval = Math.min(state.browseInterval * 2, TIMING.browseMaxMs);
    };
    state.browseTimer = this.later(20 + this.random() * 100, tick);
  }

  /** Sends questions on a link, PTR ones with our known answers, split over packets if needed. */
  private sendQuery(link: string, questions: readonly Question[]): void {
    const usable = questions.filter((question) => this.encodable(question.name));
    if (usable.length === 0) return;
    // Questions first, as many per packet as fit; known answers go with the last question packet
    // and continue in further packets with the TC bit on all but the last (RFC 6762 §7.2).
    const asksPtr = usable.some((question) => question.type === TYPE.PTR && sameName(question.name, SERVICE_NAME));
    const known = asksPtr ? (this.cache?.knownAnswers(link) ?? []) : [];
    const packets: { questions: Question[]; answers: ResourceRecord[] }[] = [{ questions: [], answers: [] }];
    let size = 12;
    const current = (): { questions: Question[]; answers: ResourceRecord[] } => packets[packets.length - 1] ?? { questions: [], answers: [] };
    for (const question of usable) {
      const length = nameWireLength(question.name) + 4;
      if (size + length > PACKET_BUDGET && current().questions.length > 0) {
        packets.push({ questions: [], answers: [] });
        size = 12;
      }
      current().questions.push(question);
      size += length;
    }
    for (const record of known) {
      const length = recordWireLength(record);
      if (size + length > PACKET_BUDGET && (current().answers.length > 0 || current().questions.length > 0)) {
        packets.push({ questions: [], answers: [] });
        size = 12;
      }
      current().answers.push(record);
      size += length;
    }
    packets.forEach((packet, index) => {
      const more = index < packets.length - 1 && packets[index + 1]?.questions.length === 0;
      this.send(link, { id: 0, flags: more ? FLAG_TRUNCATED : 0, questions: packet.questions, answers: packet.answers, authorities: [], additionals: [] });
    });
  }

  private scheduleSweep(): void {
    const cache = this.cache;
    if (cache === undefined || this.phase === 'closed') return;
    const deadline = cache.nextDeadline();
    if (!Number.isFinite(deadline)) return;
    const at = Math.max(deadline, this.lastSweep + TIMING.minSweepGapMs);
    if (this.sweepTimer !== undefined && this.sweepAt <= at) return;
    if (this.sweepTimer !== undefined) this.clear(this.sweepTimer);
    this.sweepAt = at;
    this.sweepTimer = this.later(Math.max(0, at - this.now()), () => {
      this.sweepTimer = undefined;
      this.sweepAt = Number.POSITIVE_INFINITY;
      this.lastSweep = this.now();
      for (const [link, questions] of cache.sweep()) if (this.links.has(link)) this.sendQuery(link, questions);
      this.scheduleSweep();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Plumbing

  private encodable(name: readonly string[]): boolean {
    try {
      checkName(name);
      return true;
    } catch {
      return false;
    }
  }

  private send(link: string, message: Message, to?: Destination): void {
    let packet: Buffer;
    try {
      packet = encodeMessage(message);
    } catch (error) {
      this.logError('discovery.encode-failed', error);
      return;
    }
    if (packet.length > LIMITS.maxPacketBytes) return;
    this.stats.sent += 1;
    this.transport.send(link, packet, to);
  }

  private allow(key: string): boolean {
    const now = this.now();
    const refill = (bucket: Bucket, rate: number, burst: number): boolean => {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * rate) / 1000);
      bucket.at = now;
      if (bucket.tokens < 1) return false;
      bucket.tokens -= 1;
      return true;
    };
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= RATE.maxSources) {
        const oldest = this.buckets.keys().next();
        if (oldest.done !== true) this.buckets.delete(oldest.value);
      }
      bucket = { tokens: RATE.perSourceBurst, at: now };
      this.buckets.set(key, bucket);
    }
    return refill(bucket, RATE.perSourcePerSecond, RATE.perSourceBurst) && refill(this.total, RATE.totalPerSecond, RATE.totalBurst);
  }

  private later(ms: number, run: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      try {
        run();
      } catch (error) {
        this.stats.errors += 1;
        this.logError('discovery.timer-failed', error);
      }
    }, Math.max(0, ms));
    this.timers.add(timer);
    return timer;
  }

  private clear(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  private logError(event: string, error: unknown): void {
    const now = this.now();
    if (now - this.lastErrorLog < 10_000) return;
    this.lastErrorLog = now;
    this.log(event, { error: error instanceof Error ? error.message : String(error) });
  }
}
