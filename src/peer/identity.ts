// This machine's identity: one Ed25519 key pair, made on first start and kept in the state
// directory as ordinary OpenSSH files (id_ed25519 + id_ed25519.pub), so `ssh-keygen -lf` shows the
// same fingerprint ebp shows and the key works with stock OpenSSH tools.
//
// The private key file is the unencrypted "openssh-key-v1" format (PROTOCOL.key in OpenSSH):
//   "openssh-key-v1\0" string(cipher "none") string(kdf "none") string(kdf options "")
//   uint32(1 key) string(public blob) string(private section)
// and the private section is
//   uint32 check, uint32 check, string "ssh-ed25519", string pub(32), string seed(32)||pub(32),
//   string comment, padding bytes 1, 2, 3, ... up to a multiple of 8 (the "none" cipher block size).
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { EbpError, errnoCode } from '../lib/errors.js';
import { fingerprintOf, formatPublicKey, parsePublicKey, WireReader, wireString } from './keys.js';

export interface Identity {
  /** OpenSSH 'openssh-key-v1' PEM text, unencrypted; parseable by ssh2 and by ssh-keygen. */
  readonly privateKey: string;
  /** One OpenSSH public key line: 'ssh-ed25519 AAAA... ebp'. */
  readonly publicKey: string;
  /** SSH wire-format public key blob. */
  readonly publicBlob: Buffer;
  /** 'SHA256:...' as ssh-keygen -lf prints it. */
  readonly fingerprint: string;
}

export const IDENTITY_DIR = 'identity';
export const PRIVATE_KEY_FILE = 'id_ed25519';
export const PUBLIC_KEY_FILE = 'id_ed25519.pub';
const KEY_COMMENT = 'ebp';
const KEY_TYPE = 'ssh-ed25519';
const MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
const PEM_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const PEM_END = '-----END OPENSSH PRIVATE KEY-----';
/** Ed25519 PKCS#8 DER up to the 32-byte seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** Ed25519 SubjectPublicKeyInfo DER up to the 32-byte public key (RFC 8410). */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const MAX_PRIVATE_KEY_FILE = 64 * 1024;

export function identityPaths(stateDir: string): { dir: string; privateKey: string; publicKey: string } {
  const dir = join(stateDir, IDENTITY_DIR);
  return { dir, privateKey: join(dir, PRIVATE_KEY_FILE), publicKey: join(dir, PUBLIC_KEY_FILE) };
}

/**
 * Loads `<stateDir>/identity/id_ed25519`, creating the key pair on first use. Refuses a private key
 * file that group or others can access, and a .pub file that does not belong to the private key.
 */
export async function loadOrCreateIdentity(stateDir: string): Promise<Identity> {
  const paths = identityPaths(stateDir);
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  const existing = await readPrivateKeyFile(paths.privateKey);
  if (existing !== undefined) return finishLoad(paths, existing);

  const created = generateIdentity();
  try {
    await writeFileAtomic(paths.privateKey, created.privateKey, { mode: 0o600, exclusive: true });
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') {
      throw new EbpError('STATE_INVALID', `cannot write ${paths.privateKey}: ${messageOf(error)}`, { cause: error });
    }
    // Another process created it first: use theirs.
    const theirs = await readPrivateKeyFile(paths.privateKey);
    if (theirs === undefined) throw new EbpError('STATE_INVALID', `${paths.privateKey} vanished while being created`);
    return finishLoad(paths, theirs);
  }
  await writeFileAtomic(paths.publicKey, `${created.publicKey}\n`, { mode: 0o644 });
  return created;
}

/**
 * A fresh identity in memory (nothing is written).
 *
 * An Ed25519 private key is 32 random bytes (RFC 8032 §5.1.5), so the seed comes straight from
 * the CSPRNG and node:crypto derives the public half. Not generateKeyPairSync('ed25519') + a JWK
 * export: on Node 20 that export can deadlock when garbage collection finalizes the key
 * generation job during it (the job's destructor takes the key's mutex, which the export holds;
 * seen here as a hang after a few thousand keys).
 */
export function generateIdentity(comment = KEY_COMMENT): Identity {
  const seed = randomBytes(32);
  const pub = publicFromSeed(seed);
  return identityFrom(encodePrivateKey(seed, pub, comment), pub);
}

function identityFrom(privateKey: string, pub: Buffer): Identity {
  const publicBlob = Buffer.concat([wireString(KEY_TYPE), wireString(pub)]);
  return Object.freeze({
    privateKey,
    publicKey: formatPublicKey(KEY_TYPE, publicBlob, KEY_COMMENT),
    publicBlob,
    fingerprint: fingerprintOf(publicBlob),
  });
}

/** Encodes an Ed25519 key as an unencrypted OpenSSH private key file. */
export function encodePrivateKey(seed: Buffer, pub: Buffer, comment = KEY_COMMENT): string {
  if (seed.length !== 32 || pub.length !== 32) throw new EbpError('INTERNAL', 'Ed25519 keys are 32 bytes');
  const publicBlob = Buffer.concat([wireString(KEY_TYPE), wireString(pub)]);
  const check = randomBytes(4);
  const parts = [check, check, wireString(KEY_TYPE), wireString(pub), wireString(Buffer.concat([seed, pub])), wireString(comment)];
  const unpadded = parts.reduce((sum, part) => sum + part.length, 0);
  const padding = Buffer.from(Array.from({ length: (8 - (unpadded % 8)) % 8 }, (_, i) => i + 1));
  const count = Buffer.alloc(4);
  count.writeUInt32BE(1);
  const body = Buffer.concat([
    MAGIC,
    wireString('none'),
    wireString('none'),
    wireString(''),
    count,
    wireString(publicBlob),
    wireString(Buffer.concat([...parts, padding])),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return `${PEM_BEGIN}\n${lines.join('\n')}\n${PEM_END}\n`;
}

/** Decodes an unencrypted OpenSSH Ed25519 private key file; returns the seed and public key. */
export function decodePrivateKey(text: string): { seed: Buffer; pub: Buffer; comment: string } {
  const trimmed = text.trim();
  if (!trimmed.startsWith(PEM_BEGIN) || !trimmed.endsWith(PEM_END)) {
    throw new Error('not an OpenSSH private key (missing BEGIN/END OPENSSH PRIVATE KEY lines)');
  }
  const base64 = trimmed.slice(PEM_BEGIN.length, -PEM_END.length).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) throw new Error('the key body is not base64');
  const body = Buffer.from(base64, 'base64');
  if (!body.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not an openssh-key-v1 key');
  const reader = new WireReader(body.subarray(MAGIC.length), 'private key file');
  const cipher = reader.string();
  const kdf = reader.string();
  reader.bytes();
  if (cipher !== 'none' || kdf !== 'none') {
    throw new Error(`the key is encrypted (${cipher}/${kdf}); ebp needs an unencrypted key`);
  }
  if (reader.uint32() !== 1) throw new Error('the file must hold exactly one key');
  const publicBlob = reader.bytes();
  const section = new WireReader(reader.bytes(), 'private key section');
  reader.end();
  const check1 = section.uint32();
  const check2 = section.uint32();
  if (check1 !== check2) throw new Error('check values differ (corrupt or encrypted key)');
  const type = section.string();
  if (type !== KEY_TYPE) throw new Error(`the key is ${type}, expected ${KEY_TYPE}`);
  const pub = section.bytes();
  const secret = section.bytes();
  const comment = section.bytes().toString('utf8');
  const padding = section.raw(section.remaining);
  if (pub.length !== 32 || secret.length !== 64) throw new Error('Ed25519 key fields have the wrong length');
  if (!padding.every((byte, i) => byte === i + 1) || padding.length >= 8) throw new Error('bad padding');
  const seed = Buffer.from(secret.subarray(0, 32));
  if (!secret.subarray(32).equals(pub)) throw new Error('the private key does not contain its public key');
  if (!Buffer.concat([wireString(KEY_TYPE), wireString(pub)]).equals(publicBlob)) {
    throw new Error('the public key in the header differs from the private section');
  }
  if (!publicFromSeed(seed).equals(pub)) throw new Error('the public key does not belong to the private key');
  return { seed, pub: Buffer.from(pub), comment };
}

/** The Ed25519 public key of a 32-byte seed. */
function publicFromSeed(seed: Buffer): Buffer {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  // SPKI DER of an Ed25519 key: a fixed 12-byte header, then the 32-byte key.
  if (spki.length !== SPKI_ED25519_PREFIX.length + 32 || !spki.subarray(0, SPKI_ED25519_PREFIX.length).equals(SPKI_ED25519_PREFIX)) {
    throw new EbpError('INTERNAL', 'unexpected Ed25519 public key encoding from node:crypto');
  }
  return Buffer.from(spki.subarray(SPKI_ED25519_PREFIX.length));
}

/** The file's text, or undefined when it does not exist. Checks type, size and permissions. */
async function readPrivateKeyFile(path: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw new EbpError('STATE_INVALID', `cannot open ${path}: ${messageOf(error)}`, { cause: error });
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new EbpError('STATE_INVALID', `${path} is not a regular file`);
    if ((stats.mode & 0o077) !== 0) {
      throw new EbpError(
        'STATE_INVALID',
        `${path} is accessible by others (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}); refusing to use an exposed private key`,
        { hint: `chmod 600 ${path}` },
      );
    }
    if (stats.size > MAX_PRIVATE_KEY_FILE) throw new EbpError('STATE_INVALID', `${path} is too large to be a private key`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

async function finishLoad(paths: ReturnType<typeof identityPaths>, text: string): Promise<Identity> {
  let pub: Buffer;
  try {
    pub = decodePrivateKey(text).pub;
  } catch (error) {
    throw new EbpError('STATE_INVALID', `${paths.privateKey} is not a usable key: ${messageOf(error)}`, {
      cause: error,
      hint: `restore it from a backup, or move it aside (mv ${paths.privateKey} ${paths.privateKey}.bad) to make a new identity; peers that trust the old key must then trust the new one`,
    });
  }
  const identity = identityFrom(text, pub);

  let pubText: string | undefined;
  try {
    const handle = await open(paths.publicKey, 'r');
    try {
      const stats = await handle.stat();
      if (!stats.isFile() || stats.size > 64 * 1024) throw new Error('not a regular public key file');
      pubText = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') {
      throw new EbpError('STATE_INVALID', `cannot read ${paths.publicKey}: ${messageOf(error)}`, {
        cause: error,
        hint: `remove it (rm ${paths.publicKey}); ebp writes it again from the private key`,
      });
    }
  }
  if (pubText === undefined) {
    await writeFileAtomic(paths.publicKey, `${identity.publicKey}\n`, { mode: 0o644 });
    return identity;
  }
  let matches: boolean;
  try {
    matches = parsePublicKey(pubText).blob.equals(identity.publicBlob);
  } catch (error) {
    throw new EbpError('STATE_INVALID', `${paths.publicKey} is not a valid public key: ${messageOf(error)}`, {
      cause: error,
      hint: `remove it (rm ${paths.publicKey}); ebp writes it again from the private key`,
    });
  }
  if (!matches) {
    throw new EbpError('STATE_INVALID', `${paths.publicKey} does not match the private key ${paths.privateKey}`, {
      hint: `remove it (rm ${paths.publicKey}); ebp writes it again from the private key`,
    });
  }
  return identity;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
