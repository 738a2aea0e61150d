// The keys this machine trusts: peers whose launch requests skip the approval prompt under the
// "trusted-only" and "ask" policies. One JSON file, written atomically, owned by the one daemon
// of this state directory; every change goes through a queue so concurrent calls never lose one.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { displayNameProblem } from '../config/schema.js';
import { readJsonFile, writeFileAtomic } from '../lib/atomic-file.js';
import { EbpError } from '../lib/errors.js';
import type { TrustedKey } from '../lib/views.js';
import { formatPublicKey, parsePublicKey } from './keys.js';

export type { TrustedKey } from '../lib/views.js';

export const TRUST_FILE = 'trusted-keys.json';
const FILE_VERSION = 1;
/** Shortest fingerprint prefix (after 'SHA256:') accepted to pick a key. */
export const MIN_PREFIX_LENGTH = 4;
const NAME_MAX = 63;

export class TrustStore {
  private keys: readonly TrustedKey[];
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly stateDir: string,
    readonly file: string,
    keys: readonly TrustedKey[],
  ) {
    this.keys = keys;
  }

  /** Reads `<stateDir>/trusted-keys.json` (absent → empty); a corrupt file is a STATE_INVALID error. */
  static async open(stateDir: string): Promise<TrustStore> {
    const file = join(stateDir, TRUST_FILE);
    const keys = await readJsonFile(file, validateTrustFile, []);
    return new TrustStore(stateDir, file, keys);
  }

  list(): TrustedKey[] {
    return [...this.keys];
  }

  /** The trusted key with this fingerprint ('SHA256:' optional), if any. */
  find(fingerprint: string): TrustedKey | undefined {
    const wanted = fingerprint.startsWith('SHA256:') ? fingerprint : `SHA256:${fingerprint}`;
    return this.keys.find((key) => key.fingerprint === wanted);
  }

  /**
   * Trusts a public key line. Adding a key that is already trusted returns the existing entry
   * (renamed when a different name is given).
   */
  async add(publicKeyText: string, options: { name?: string } = {}): Promise<TrustedKey> {
    const parsed = parsePublicKey(publicKeyText);
    if (options.name !== undefined) {
      const problem = displayNameProblem(options.name);
      if (problem !== undefined) throw new EbpError('USAGE', `invalid name ${JSON.stringify(options.name)}: ${problem}`);
    }
    return await this.mutate((keys) => {
      const existing = keys.find((key) => key.fingerprint === parsed.fingerprint);
      if (existing !== undefined) {
        if (options.name === undefined || options.name === existing.name) return { keys, result: existing };
        const renamed: TrustedKey = Object.freeze({ ...existing, name: options.name });
        return { keys: keys.map((key) => (key === existing ? renamed : key)), result: renamed };
      }
      const entry: TrustedKey = Object.freeze({
        fingerprint: parsed.fingerprint,
        publicKey: formatPublicKey(parsed.type, parsed.blob, parsed.comment),
        name: options.name ?? nameFromComment(parsed.comment, parsed.fingerprint),
        addedAt: new Date().toISOString(),
      });
      return { keys: [...keys, entry], result: entry };
    });
  }

  /** Removes the key picked by {@link resolve} and returns it. */
  remove(idOrPrefix: string): Promise<TrustedKey> {
    return this.mutate((keys) => {
      const target = resolveIn(keys, idOrPrefix);
      return { keys: keys.filter((key) => key !== target), result: target };
    });
  }

  /**
   * Picks one key by full fingerprint, by exact name, or by a unique fingerprint prefix of at
   * least {@link MIN_PREFIX_LENGTH} characters ('SHA256:' optional), in that order.
   * No match → NOT_FOUND; several → USAGE listing the candidates.
   */
  resolve(idOrPrefix: string): TrustedKey {
    return resolveIn(this.keys, idOrPrefix);
  }

  private mutate<T>(change: (keys: readonly TrustedKey[]) => { keys: readonly TrustedKey[]; result: T }): Promise<T> {
    const run = this.queue.then(async () => {
      const { keys, result } = change(this.keys);
      if (keys !== this.keys) {
        await this.write(keys);
        this.keys = keys;
      }
      return result;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async write(keys: readonly TrustedKey[]): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    const body = { version: FILE_VERSION, keys: keys.map(({ fingerprint, publicKey, name, addedAt }) => ({ fingerprint, publicKey, name, addedAt })) };
    await writeFileAtomic(this.file, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  }
}

function resolveIn(keys: readonly TrustedKey[], idOrPrefix: string): TrustedKey {
  const query = idOrPrefix.trim();
  if (query === '') throw new EbpError('USAGE', 'give a fingerprint, a fingerprint prefix or a name');
  const bare = query.startsWith('SHA256:') ? query.slice('SHA256:'.length) : query;
  const exact = keys.find((key) => key.fingerprint === `SHA256:${bare}`);
  if (exact !== undefined) return exact;

  const byName = keys.filter((key) => key.name === query);
  if (byName.length === 1 && byName[0] !== undefined) return byName[0];
  if (byName.length > 1) throw ambiguous(query, byName, 'several trusted keys have this name');

  const byPrefix = bare.length >= MIN_PREFIX_LENGTH ? keys.filter((key) => key.fingerprint.slice('SHA256:'.length).startsWith(bare)) : [];
  if (byPrefix.length === 1 && byPrefix[0] !== undefined) return byPrefix[0];
  if (byPrefix.length > 1) throw ambiguous(query, byPrefix, 'the prefix is not unique');

  const short = bare.length < MIN_PREFIX_LENGTH ? ` (a fingerprint prefix needs at least ${MIN_PREFIX_LENGTH} characters)` : '';
  throw new EbpError('NOT_FOUND', `no trusted key matches ${JSON.stringify(query)}${short}`, {
    hint: 'give a full fingerprint (SHA256:...), a unique fingerprint prefix, or a name of a trusted key',
  });
}

function ambiguous(query: string, candidates: readonly TrustedKey[], why: string): EbpError {
  const lines = candidates.map((key) => `  ${key.fingerprint}  ${key.name}`).join('\n');
  return new EbpError('USAGE', `${JSON.stringify(query)} matches ${candidates.length} trusted keys (${why}):\n${lines}`, {
    hint: 'give more characters of the fingerprint, or the whole fingerprint',
  });
}

function nameFromComment(comment: string, fingerprint: string): string {
  const trimmed = Array.from(comment.trim()).slice(0, NAME_MAX).join('').trim();
  if (trimmed !== '' && displayNameProblem(trimmed) === undefined) return trimmed;
  return `key-${fingerprint.slice('SHA256:'.length, 'SHA256:'.length + 8)}`;
}

function validateTrustFile(value: unknown): TrustedKey[] {
  if (!isObject(value)) throw new Error('expected a JSON object');
  if (value['version'] !== FILE_VERSION) {
    throw new Error(`unsupported version ${JSON.stringify(value['version'])} (this ebp reads version ${FILE_VERSION})`);
  }
  const entries = value['keys'];
  if (!Array.isArray(entries)) throw new Error('`keys` must be an array');
  const seen = new Set<string>();
  return entries.map((entry: unknown, index): TrustedKey => {
    const at = `keys[${index}]`;
    if (!isObject(entry)) throw new Error(`${at} must be an object`);
    const { fingerprint, publicKey, name, addedAt } = entry;
    if (typeof publicKey !== 'string') throw new Error(`${at}.publicKey must be a string`);
    if (typeof fingerprint !== 'string') throw new Error(`${at}.fingerprint must be a string`);
    if (typeof name !== 'string') throw new Error(`${at}.name must be a string`);
    if (typeof addedAt !== 'string' || Number.isNaN(Date.parse(addedAt))) throw new Error(`${at}.addedAt must be an ISO date`);
    let parsed;
    try {
      parsed = parsePublicKey(publicKey);
    } catch (error) {
      throw new Error(`${at}.publicKey: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    if (parsed.fingerprint !== fingerprint) throw new Error(`${at}.fingerprint ${fingerprint} does not match its key (${parsed.fingerprint})`);
    const problem = displayNameProblem(name);
    if (problem !== undefined) throw new Error(`${at}.name: ${problem}`);
    if (seen.has(fingerprint)) throw new Error(`${at}: ${fingerprint} is listed twice`);
    seen.add(fingerprint);
    return Object.freeze({ fingerprint, publicKey, name, addedAt });
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
