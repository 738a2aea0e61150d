// Client side trust on first use, like OpenSSH's StrictHostKeyChecking=accept-new: the first key
// seen at an address is remembered; later connections must present the same key, and a different
// one stops the connection with both fingerprints shown.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { displayNameProblem } from '../config/schema.js';
import { readJsonFile, writeFileAtomic } from '../lib/atomic-file.js';
import { EbpError } from '../lib/errors.js';
import { isFingerprint } from './keys.js';

export interface KnownPeer {
  /** Normalized 'host:port' ('[addr]:port' for IPv6). */
  readonly endpoint: string;
  readonly fingerprint: string;
  /** The peer's display name when it was remembered, if known. */
  readonly name?: string;
  /** ISO time the current key was first remembered. */
  readonly addedAt: string;
}

export type HostKeyCheck = { status: 'new' } | { status: 'match' } | { status: 'changed'; expected: string };

export const KNOWN_PEERS_FILE = 'known-peers.json';
const FILE_VERSION = 1;

export class KnownHosts {
  private peers: readonly KnownPeer[];
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly stateDir: string,
    readonly file: string,
    peers: readonly KnownPeer[],
  ) {
    this.peers = peers;
  }

  /** Reads `<stateDir>/known-peers.json` (absent → empty); a corrupt file is a STATE_INVALID error. */
  static async open(stateDir: string): Promise<KnownHosts> {
    const file = join(stateDir, KNOWN_PEERS_FILE);
    return new KnownHosts(stateDir, file, await readJsonFile(file, validateKnownPeers, []));
  }

  list(): KnownPeer[] {
    return [...this.peers];
  }

  check(endpoint: string, fingerprint: string): HostKeyCheck {
    const key = normalizeEndpoint(endpoint);
    checkFingerprint(fingerprint);
    const known = this.peers.find((peer) => peer.endpoint === key);
    if (known === undefined) return { status: 'new' };
    if (known.fingerprint === fingerprint) return { status: 'match' };
    return { status: 'changed', expected: known.fingerprint };
  }

  /** Records (or replaces) the key for an address. */
  async remember(endpoint: string, fingerprint: string, name?: string): Promise<void> {
    const key = normalizeEndpoint(endpoint);
    checkFingerprint(fingerprint);
    const problem = name === undefined ? undefined : displayNameProblem(name);
    if (problem !== undefined) throw new EbpError('USAGE', `invalid peer name ${JSON.stringify(name?.slice(0, 100))}: ${problem}`);
    await this.mutate((peers) => {
      const existing = peers.find((peer) => peer.endpoint === key);
      if (existing?.fingerprint === fingerprint && (name === undefined || existing.name === name)) return peers;
      const entry: KnownPeer = Object.freeze({
        endpoint: key,
        fingerprint,
        ...(name !== undefined ? { name } : existing?.name !== undefined ? { name: existing.name } : {}),
        addedAt: existing?.fingerprint === fingerprint ? existing.addedAt : new Date().toISOString(),
      });
      return [...peers.filter((peer) => peer !== existing), entry];
    });
  }

  /** Forgets an address; false when it was not known. */
  async forget(endpoint: string): Promise<boolean> {
    const key = normalizeEndpoint(endpoint);
    let found = false;
    await this.mutate((peers) => {
      found = peers.some((peer) => peer.endpoint === key);
      return found ? peers.filter((peer) => peer.endpoint !== key) : peers;
    });
    return found;
  }

  private mutate(change: (peers: readonly KnownPeer[]) => readonly KnownPeer[]): Promise<void> {
    const run = this.queue.then(async () => {
      const peers = change(this.peers);
      if (peers === this.peers) return;
      await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
      const body = { version: FILE_VERSION, peers };
      await writeFileAtomic(this.file, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
      this.peers = peers;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** The error for a peer whose key differs from the remembered one. */
export function hostKeyChanged(endpoint: string, expected: string, got: string): EbpError {
  return new EbpError(
    'HOST_KEY_CHANGED',
    [
      `the key of peer ${endpoint} has CHANGED since it was first seen; refusing to connect.`,
      `  remembered: ${expected}`,
      `  presented:  ${got}`,
      'Someone may be impersonating the peer, or the peer was reinstalled and made a new key.',
    ].join('\n'),
    {
      hint: `ask the peer's owner for its fingerprint (ebp prints it at start); if it is ${got}, run \`ebp peers forget ${endpoint}\` and connect again`,
    },
  );
}

/**
 * 'Host:Port' → 'host:port'. IPv6 addresses need brackets ('[fe80::1%eth0]:20101'); the port
 * must be 1..65535. Anything else is a USAGE error.
 */
export function normalizeEndpoint(endpoint: string): string {
  const text = endpoint.trim();
  const bad = (why: string): EbpError =>
    new EbpError('USAGE', `invalid peer address ${JSON.stringify(endpoint.slice(0, 300))}: ${why}`, {
      hint: 'use HOST:PORT, e.g. alice-laptop.local:20101 or [fe80::1%eth0]:20101',
    });
  let host: string;
  let portText: string;
  const v6 = /^\[([0-9A-Fa-f:.]{2,45})(%[A-Za-z0-9_.:-]{1,32})?\]:(\d{1,5})$/.exec(text);
  const named = /^([A-Za-z0-9_.-]{1,253}):(\d{1,5})$/.exec(text);
  if (v6?.[1] !== undefined && v6[3] !== undefined) {
    if (!v6[1].includes(':')) throw bad('brackets are only for IPv6 addresses');
    host = `[${v6[1].toLowerCase()}${v6[2] ?? ''}]`;
    portText = v6[3];
  } else if (named?.[1] !== undefined && named[2] !== undefined) {
    host = named[1].toLowerCase().replace(/\.$/, '');
    portText = named[2];
  } else {
    throw bad(text.split(':').length > 2 && !text.startsWith('[') ? 'put IPv6 addresses in brackets' : 'expected HOST:PORT');
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) throw bad('the port must be 1..65535');
  if (host === '' || host.startsWith('.') || host.startsWith('-')) throw bad('the host name is not valid');
  return `${host}:${port}`;
}

function checkFingerprint(fingerprint: string): void {
  if (!isFingerprint(fingerprint)) {
    throw new EbpError('KEY_INVALID', `invalid key fingerprint ${JSON.stringify(fingerprint.slice(0, 100))}: expected SHA256: and 43 base64 characters`);
  }
}

function validateKnownPeers(value: unknown): KnownPeer[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object');
  const record = value as Record<string, unknown>;
  if (record['version'] !== FILE_VERSION) {
    throw new Error(`unsupported version ${JSON.stringify(record['version'])} (this ebp reads version ${FILE_VERSION})`);
  }
  const entries = record['peers'];
  if (!Array.isArray(entries)) throw new Error('`peers` must be an array');
  const seen = new Set<string>();
  return entries.map((entry: unknown, index): KnownPeer => {
    const at = `peers[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new Error(`${at} must be an object`);
    const { endpoint, fingerprint, name, addedAt } = entry as Record<string, unknown>;
    if (typeof endpoint !== 'string') throw new Error(`${at}.endpoint must be a string`);
    let normalized: string;
    try {
      normalized = normalizeEndpoint(endpoint);
    } catch (error) {
      throw new Error(`${at}.endpoint: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    if (normalized !== endpoint) throw new Error(`${at}.endpoint ${JSON.stringify(endpoint)} is not normalized`);
    if (typeof fingerprint !== 'string' || !isFingerprint(fingerprint)) throw new Error(`${at}.fingerprint must be a SHA256: fingerprint`);
    if (name !== undefined && (typeof name !== 'string' || displayNameProblem(name) !== undefined)) {
      throw new Error(`${at}.name must be a display name`);
    }
    if (typeof addedAt !== 'string' || Number.isNaN(Date.parse(addedAt))) throw new Error(`${at}.addedAt must be an ISO date`);
    if (seen.has(endpoint)) throw new Error(`${at}: ${endpoint} is listed twice`);
    seen.add(endpoint);
    return Object.freeze({ endpoint, fingerprint, ...(name !== undefined ? { name } : {}), addedAt });
  });
}
