// Peers given by address, for networks where multicast does not reach: `ebp peers add HOST:PORT`.
// Kept in the state folder; the daemon checks them like discovered peers.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../lib/atomic-file.js';
import { EbpError } from '../lib/errors.js';
import { normalizeEndpoint } from './known-hosts.js';

export const STATIC_PEERS_FILE = 'static-peers.json';
const MAX_STATIC_PEERS = 256;

function validate(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === 'string')) {
    throw new Error('expected a list of "host:port" strings');
  }
  return value.map((item) => normalizeEndpoint(item));
}

export class StaticPeers {
  #endpoints: string[];
  readonly #file: string;
  readonly #stateDir: string;

  private constructor(stateDir: string, file: string, endpoints: string[]) {
    this.#stateDir = stateDir;
    this.#file = file;
    this.#endpoints = endpoints;
  }

  static async open(stateDir: string): Promise<StaticPeers> {
    const file = join(stateDir, STATIC_PEERS_FILE);
    return new StaticPeers(stateDir, file, await readJsonFile(file, validate, []));
  }

  list(): string[] {
    return [...this.#endpoints];
  }

  async add(endpoint: string): Promise<string> {
    const key = normalizeEndpoint(endpoint);
    if (this.#endpoints.includes(key)) return key;
    if (this.#endpoints.length >= MAX_STATIC_PEERS) throw new EbpError('USAGE', `at most ${MAX_STATIC_PEERS} static peers`);
    await this.#save([...this.#endpoints, key]);
    return key;
  }

  async remove(endpoint: string): Promise<string> {
    const key = normalizeEndpoint(endpoint);
    if (!this.#endpoints.includes(key)) throw new EbpError('NOT_FOUND', `${key} is not a static peer`, { hint: 'see `ebp peers`' });
    await this.#save(this.#endpoints.filter((item) => item !== key));
    return key;
  }

  async #save(endpoints: string[]): Promise<void> {
    await mkdir(this.#stateDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.#file, `${JSON.stringify(endpoints, null, 2)}\n`, { mode: 0o600 });
    this.#endpoints = endpoints;
  }
}
