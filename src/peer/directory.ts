// The daemon's view of the pool: peers found by DNS-SD and peers given by address, with what we
// know of each (identity, pinning, impostors, trust, load, catalogue), and the resolution of what
// a person types for PEER: a display name, a fingerprint prefix, or HOST:PORT.
import type { DiscoveredPeer } from '../discovery/index.js';
import { EbpError } from '../lib/errors.js';
import type { PeerStatus } from '../lib/views.js';
import type { KnownHosts } from './known-hosts.js';
import type { StaticPeers } from './static-peers.js';
import type { TrustStore } from './trust-store.js';

/**
 * verified: announced an id and a connection proved it (or its key was pinned before);
 * announced: announced an id not yet proven by a connection; pinned: no id announced, key learned
 * at the first connection; unverified: neither; impostor: its key contradicts an announcement,
 * or another proven peer owns its id; unreachable: a static peer that does not answer.
 */
export type { PeerStatus } from '../lib/views.js';

export interface PeerView {
  readonly name: string;
  /** Key fingerprint: announced (mDNS TXT) or learned at the first connection. */
  readonly id: string | undefined;
  readonly addresses: readonly string[];
  readonly port: number;
  readonly source: 'mdns' | 'static';
  readonly status: PeerStatus;
  /** Their key is one this host trusts (their launches run here without asking). */
  readonly trusted: boolean;
  readonly apps: number | undefined;
  readonly load: string | undefined;
  readonly catalogVersion: string | undefined;
  readonly interfaces: readonly string[];
  readonly lastSeen: number;
}

/** Where to dial a peer and which key it must present. */
export interface PeerTarget {
  readonly host: string;
  readonly port: number;
  readonly expectedFingerprint?: string;
  readonly view?: PeerView;
}

/** What a static peer says of itself when asked (ebp:status). */
export interface PeerStatusAnswer {
  readonly name: string;
  readonly id: string;
  readonly apps: number;
  readonly cat: string;
  readonly load: string;
}

export interface DirectoryOptions {
  readonly knownHosts: KnownHosts;
  readonly trust: TrustStore;
  readonly staticPeers: StaticPeers;
  /** Live DNS-SD peers (none when discovery is off). */
  readonly discovered: () => readonly DiscoveredPeer[];
  /** Asks a static peer for its status; rejects when it cannot be reached. */
  readonly probe: (target: PeerTarget) => Promise<PeerStatusAnswer>;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.%a-zA-Z0-9]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const FINGERPRINT_PREFIX = /^(SHA256:)?[A-Za-z0-9+/]{4,43}$/;

function endpointOf(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** IPv4 first (no scope needed), then global IPv6, then link-local IPv6 (scoped). */
function preferredAddress(addresses: readonly string[]): string | undefined {
  return addresses.find((a) => !a.includes(':')) ?? addresses.find((a) => !a.toLowerCase().startsWith('fe80')) ?? addresses[0];
}

export class PeerDirectory {
  readonly #options: DirectoryOptions;
  /** Fingerprints or endpoints that presented a key other than the one announced. */
  readonly #impostors = new Set<string>();
  readonly #staticState = new Map<string, { answer?: PeerStatusAnswer; reachable: boolean; checkedAt: number }>();
  /** Endpoints whose connection presented the announced key: proven owners of that id. */
  readonly #genuine = new Map<string, string>();
  /** Endpoints whose only mark is that another instance claims the same id. */
  readonly #contested = new Set<string>();

  constructor(options: DirectoryOptions) {
    this.#options = options;
  }

  list(): PeerView[] {
    const { knownHosts, trust } = this.#options;
    const views: PeerView[] = [];
    const claims = new Map<string, number>();
    for (const peer of this.#options.discovered()) if (peer.txt.id !== undefined) claims.set(peer.txt.id, (claims.get(peer.txt.id) ?? 0) + 1);
    for (const peer of this.#options.discovered()) {
      const address = preferredAddress(peer.addresses);
      const endpoint = address === undefined ? undefined : endpointOf(address, peer.port);
      const pinned = endpoint === undefined ? undefined : knownHosts.list().find((known) => known.endpoint === endpoint);
      const id = peer.txt.id ?? pinned?.fingerprint;
      // Two live instances claiming one identity: at most one is real. The one whose
      // connection proved the key is verified; the others are impostors. Until one is proven,
      // all are contested and only an address (checked by its host key) selects one.
      const contested = peer.txt.id !== undefined && new Set(this.#options.discovered().filter((p) => p.txt.id === peer.txt.id).map((p) => p.instance)).size > 1;
      const proven = endpoint !== undefined && peer.txt.id !== undefined && this.#genuine.get(endpoint) === peer.txt.id;
      const provenElsewhere = peer.txt.id !== undefined && !proven && [...this.#genuine.values()].includes(peer.txt.id);
      if (endpoint !== undefined) {
        if (contested && !proven && !provenElsewhere) this.#contested.add(endpoint);
        else this.#contested.delete(endpoint);
      }
      const impostor = (contested && !proven) || provenElsewhere || (endpoint !== undefined && this.#impostors.has(endpoint)) || (peer.txt.id !== undefined && pinned !== undefined && pinned.fingerprint !== peer.txt.id);
      views.push({
        name: peer.instance,
        id,
        addresses: peer.addresses,
        port: peer.port,
        source: 'mdns',
        status: impostor ? 'impostor' : peer.verified ? (proven || pinned !== undefined ? 'verified' : 'announced') : pinned !== undefined ? 'pinned' : 'unverified',
        trusted: id !== undefined && trust.find(id) !== undefined,
        apps: peer.txt.apps,
        load: peer.txt.load,
        catalogVersion: peer.txt.cat,
        interfaces: peer.interfaces,
        lastSeen: peer.lastSeen,
      });
    }
    for (const endpoint of this.#options.staticPeers.list()) {
      const match = HOST_PORT.exec(endpoint);
      const host = (match?.[1] ?? endpoint).replace(/^\[|\]$/g, '');
      const port = Number(match?.[2] ?? 0);
      const state = this.#staticState.get(endpoint);
      const pinned = knownHosts.list().find((known) => known.endpoint === endpoint);
      const answer = state?.answer;
      const impostor = this.#impostors.has(endpoint) || (answer !== undefined && pinned !== undefined && answer.id !== pinned.fingerprint);
      const id = pinned?.fingerprint ?? answer?.id;
      views.push({
        name: answer?.name ?? endpoint,
        id,
        addresses: [host],
        port,
        source: 'static',
        status: impostor ? 'impostor' : state?.reachable === false ? 'unreachable' : pinned !== undefined ? 'pinned' : 'unverified',
        trusted: id !== undefined && trust.find(id) !== undefined,
        apps: answer?.apps,
        load: answer?.load,
        catalogVersion: answer?.cat,
        interfaces: [],
        lastSeen: state?.checkedAt ?? 0,
      });
    }
    return views;
  }

  /** Health check of the static peers (discovered ones expire by their TTL). */
  async checkStatic(): Promise<void> {
    await Promise.all(this.#options.staticPeers.list().map(async (endpoint) => {
      const match = HOST_PORT.exec(endpoint);
      if (match?.[1] === undefined) return;
      try {
        const answer = await this.#options.probe({ host: match[1].replace(/^\[|\]$/g, ''), port: Number(match[2]) });
        this.#staticState.set(endpoint, { answer, reachable: true, checkedAt: Date.now() });
      } catch (error) {
        if (error instanceof EbpError && error.code === 'HOST_KEY_CHANGED') this.#impostors.add(endpoint);
        this.#staticState.set(endpoint, { reachable: false, checkedAt: Date.now() });
      }
    }));
  }

  /** A connection to this endpoint presented the announced key. */
  markGenuine(host: string, port: number, fingerprint: string): void {
    const endpoint = endpointOf(host, port);
    if (!this.#impostors.has(endpoint)) this.#genuine.set(endpoint, fingerprint);
  }

  /** A connection to this endpoint met the wrong key: never use it again (until restart). */
  markImpostor(host: string, port: number): void {
    this.#impostors.add(endpointOf(host, port));
  }

  /**
   * PEER as typed: HOST:PORT, a fingerprint (prefix), or a display name. Ambiguity is an error
   * that lists the candidates; impostors are never returned.
   */
  resolve(text: string): PeerTarget {
    const views = this.list();
    const hostPort = HOST_PORT.exec(text);
    if (hostPort?.[1] !== undefined) {
      const host = hostPort[1].replace(/^\[|\]$/g, '');
      const port = Number(hostPort[2]);
      const view = views.find((v) => v.port === port && v.addresses.includes(host));
      // A contested claim is settled by the host key at this address, so it may be dialled.
      if (view?.status === 'impostor' && !this.#contested.has(endpointOf(host, port))) throw impostorError(view);
      return view?.id === undefined || view.source === 'static' ? { host, port } : { host, port, expectedFingerprint: view.id, view };
    }
    const candidates = views.filter((view) => view.name.toLowerCase() === text.toLowerCase());
    const byId = FINGERPRINT_PREFIX.test(text)
      ? views.filter((view) => view.id !== undefined && (view.id === text || view.id.startsWith(text.startsWith('SHA256:') ? text : `SHA256:${text}`)))
      : [];
    const found = candidates.length > 0 ? candidates : byId;
    // Where one claimant of an id is proven, the impostors claiming it drop out of the choice.
    const matches = dedupe(found.filter((view) => view.status !== 'impostor' || !found.some((other) => other.id === view.id && other.status !== 'impostor')));
    const [first] = matches;
    if (first === undefined) {
      throw new EbpError('NOT_FOUND', `no peer called "${text.slice(0, 80)}" in the pool`, { hint: 'see `ebp peers`; or give HOST:PORT' });
    }
    if (matches.length > 1) {
      throw new EbpError('USAGE', `"${text.slice(0, 80)}" matches several peers:\n${matches.map((m) => `  ${m.name}  ${m.id ?? '(no id)'}  ${m.addresses.join(',')}:${m.port}`).join('\n')}`, {
        hint: 'use a longer fingerprint prefix or HOST:PORT',
      });
    }
    if (first.status === 'impostor') {
      throw this.#contested.size > 0 && first.id !== undefined && views.some((v) => v.id === first.id && v !== first)
        ? new EbpError('HOST_KEY_CHANGED', `more than one peer claims ${first.id}; which is genuine is not proven yet`, { hint: 'name it by HOST:PORT: its host key then decides' })
        : impostorError(first);
    }
    const address = preferredAddress(first.addresses);
    if (address === undefined) throw new EbpError('PEER_UNREACHABLE', `${first.name} has no known address yet`);
    return first.id === undefined ? { host: address, port: first.port, view: first } : { host: address, port: first.port, expectedFingerprint: first.id, view: first };
  }
}

/** One peer seen on several links (or by name and id) is one candidate. */
function dedupe(views: readonly PeerView[]): PeerView[] {
  const seen = new Map<string, PeerView>();
  for (const view of views) {
    const key = view.id ?? `${view.name}@${view.addresses.join(',')}:${view.port}`;
    if (!seen.has(key)) seen.set(key, view);
  }
  return [...seen.values()];
}

function impostorError(view: PeerView): EbpError {
  return new EbpError('HOST_KEY_CHANGED', `${view.name} is marked as an impostor: its key does not match the identity it announced`, {
    hint: 'it is never used; if its owner really changed keys, restart this daemon after checking with them',
  });
}
