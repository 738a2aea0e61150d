// OpenSSH public keys as people paste them: "ssh-ed25519 AAAA... comment". Parsing is strict,
// because these lines come from other people: one key per line, a canonical base64 blob whose
// inner structure matches its declared type and holds a valid key, bounded lengths, and no
// control characters anywhere (a comment is shown in terminals and web pages).
import { createHash, createPublicKey } from 'node:crypto';
import { EbpError } from '../lib/errors.js';

export const SUPPORTED_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
] as const;

export type KeyType = (typeof SUPPORTED_KEY_TYPES)[number];

export interface PublicKey {
  readonly type: KeyType;
  /** The SSH wire-format key blob (what the base64 field decodes to). */
  readonly blob: Buffer;
  /** Free text after the key; '' when there is none. */
  readonly comment: string;
  /** `SHA256:` + unpadded base64 of sha256(blob), as `ssh-keygen -lf` prints it. */
  readonly fingerprint: string;
}

/** Longest public key line accepted (an RSA-16384 key is about 2.8 KiB). */
export const MAX_PUBLIC_KEY_LENGTH = 16 * 1024;

const CURVES: Readonly<Record<string, { readonly jwk: string; readonly coordinate: number }>> = {
  nistp256: { jwk: 'P-256', coordinate: 32 },
  nistp384: { jwk: 'P-384', coordinate: 48 },
  nistp521: { jwk: 'P-521', coordinate: 66 },
};

const MIN_RSA_BITS = 1024;
const MAX_RSA_BITS = 16384;

/** Option words that may open an authorized_keys line without an `=`. */
const AUTHORIZED_KEYS_FLAGS: ReadonlySet<string> = new Set([
  'agent-forwarding', 'cert-authority', 'no-agent-forwarding', 'no-port-forwarding', 'no-pty', 'no-user-rc',
  'no-x11-forwarding', 'port-forwarding', 'pty', 'restrict', 'user-rc', 'x11-forwarding', 'no-touch-required',
  'verify-required',
]);

const SUPPORTED_LIST = SUPPORTED_KEY_TYPES.join(', ');
const KEY_TYPE_SET: ReadonlySet<string> = new Set(SUPPORTED_KEY_TYPES);
const EXAMPLE = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... alice@laptop';
// C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides.
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

function invalid(message: string, hint = `paste one public key line, like: ${EXAMPLE}`): EbpError {
  return new EbpError('KEY_INVALID', message, { hint });
}

export function isKeyType(value: string): value is KeyType {
  return KEY_TYPE_SET.has(value);
}

/** `SHA256:` + unpadded base64 of the SHA-256 of the key blob; identical to `ssh-keygen -lf`. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** Whether text is a well-formed `SHA256:` fingerprint (43 unpadded base64 characters). */
export function isFingerprint(text: string): boolean {
  return FINGERPRINT.test(text);
}

/** One OpenSSH public key line: `type base64 [comment]`. */
export function formatPublicKey(type: string, blob: Buffer, comment = ''): string {
  if (CONTROL.test(comment)) throw invalid('a key comment cannot contain line breaks or control characters');
  const text = comment.trim();
  return text === '' ? `${type} ${blob.toString('base64')}` : `${type} ${blob.toString('base64')} ${text}`;
}

/** Parses and validates one OpenSSH public key line; throws KEY_INVALID saying what is wrong. */
export function parsePublicKey(text: string): PublicKey {
  if (typeof text !== 'string') throw invalid('a public key must be text');
  if (text.length > MAX_PUBLIC_KEY_LENGTH) {
    throw invalid(`public key text is too long (${text.length} characters; at most ${MAX_PUBLIC_KEY_LENGTH})`);
  }
  const line = text.replace(/^\uFEFF/, '').trim();
  if (line === '') throw invalid('public key is empty');
  if (/[\r\n]/.test(line)) {
    throw invalid('expected one public key line, got several lines', 'add keys one at a time');
  }
  // Tabs are field separators in authorized_keys files; anything else that is a control is hostile.
  if (CONTROL.test(line)) throw invalid('public key contains control characters');

  const fields = line.split(/[ \t]+/);
  const type = fields[0] ?? '';
  if (!isKeyType(type)) throw unsupportedType(type, fields);
  const encoded = fields[1];
  if (encoded === undefined) throw invalid(`public key has no key data after \`${type}\``);
  const comment = fields.slice(2).join(' ');

  const blob = decodeBase64Strict(encoded);
  validateBlob(type, blob);
  return { type, blob, comment, fingerprint: fingerprintOf(blob) };
}

function unsupportedType(type: string, fields: readonly string[]): EbpError {
  const later = fields.findIndex((field, index) => index > 0 && isKeyType(field));
  if (later > 0 || /^[a-z-]+[=,]/i.test(type) || AUTHORIZED_KEYS_FLAGS.has(type.toLowerCase())) {
    return invalid(
      `authorized_keys options such as \`${truncate(type, 40)}\` are not supported before the key`,
      'paste only the key itself, starting with its type (ssh-ed25519, ecdsa-sha2-…, ssh-rsa)',
    );
  }
  if (type.includes('-cert-v01@openssh.com')) {
    return invalid(`OpenSSH certificates (\`${truncate(type, 60)}\`) are not supported; use the plain public key`);
  }
  if (type.startsWith('sk-')) {
    return invalid(`security-key (FIDO) keys (\`${truncate(type, 60)}\`) are not supported; supported types: ${SUPPORTED_LIST}`);
  }
  if (type.startsWith('-----BEGIN')) {
    return invalid('that looks like a PEM key file, not an OpenSSH public key line', 'paste the contents of the .pub file');
  }
  return invalid(`unsupported key type \`${truncate(type, 60)}\`; supported types: ${SUPPORTED_LIST}`);
}

function decodeBase64Strict(encoded: string): Buffer {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    throw invalid('public key data is not valid base64');
  }
  const blob = Buffer.from(encoded, 'base64');
  // Reject non-canonical encodings (stray bits in the padding), so one key has one spelling.
  if (blob.toString('base64') !== encoded) throw invalid('public key data is not canonical base64');
  return blob;
}

/** Reads SSH wire-format fields (RFC 4251 §5) from a blob, failing on any overrun. */
export class WireReader {
  private offset = 0;

  constructor(private readonly buffer: Buffer, private readonly what = 'public key data') {}

  get remaining(): number {
    return this.buffer.length - this.offset;
  }

  uint32(): number {
    if (this.remaining < 4) throw invalid(`${this.what} is truncated`);
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  bytes(): Buffer {
    const length = this.uint32();
    if (length > this.remaining) throw invalid(`${this.what} is truncated`);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  raw(length: number): Buffer {
    if (length > this.remaining) throw invalid(`${this.what} is truncated`);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  string(): string {
    return this.bytes().toString('latin1');
  }

  end(): void {
    if (this.remaining !== 0) throw invalid(`${this.what} has ${this.remaining} unexpected trailing bytes`);
  }
}

/** SSH wire-format writer: uint32-length-prefixed strings. */
export function wireString(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function validateBlob(type: KeyType, blob: Buffer): void {
  const reader = new WireReader(blob);
  const inner = reader.string();
  if (inner !== type) {
    throw invalid(`public key data is a \`${truncate(inner, 40)}\` key but the line says \`${type}\``);
  }
  const check = (jwk: Record<string, string>): void => {
    try {
      createPublicKey({ key: jwk, format: 'jwk' });
    } catch (error) {
      throw new EbpError('KEY_INVALID', `public key data does not hold a valid ${type} key`, { cause: error });
    }
  };
  switch (type) {
    case 'ssh-ed25519': {
      const key = reader.bytes();
      reader.end();
      if (key.length !== 32) throw invalid(`ssh-ed25519 key must be 32 bytes, got ${key.length}`);
      check({ kty: 'OKP', crv: 'Ed25519', x: key.toString('base64url') });
      return;
    }
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521': {
      const curveName = reader.string();
      const point = reader.bytes();
      reader.end();
      const expectedCurve = type.slice('ecdsa-sha2-'.length);
      const curve = CURVES[expectedCurve];
      if (curveName !== expectedCurve || curve === undefined) {
        throw invalid(`public key data names curve \`${truncate(curveName, 40)}\` but the line says \`${type}\``);
      }
      const size = curve.coordinate;
      if (point.length !== 1 + 2 * size || point[0] !== 0x04) {
        throw invalid(`${type} key must be an uncompressed curve point of ${1 + 2 * size} bytes`);
      }
      check({
        kty: 'EC',
        crv: curve.jwk,
        x: point.subarray(1, 1 + size).toString('base64url'),
        y: point.subarray(1 + size).toString('base64url'),
      });
      return;
    }
    case 'ssh-rsa': {
      const exponent = mpintMagnitude(reader.bytes(), 'exponent');
      const modulus = mpintMagnitude(reader.bytes(), 'modulus');
      reader.end();
      const bits = bitLength(modulus);
      if (bits < MIN_RSA_BITS) throw invalid(`ssh-rsa key is too small (${bits} bits; at least ${MIN_RSA_BITS})`);
      if (bits > MAX_RSA_BITS) throw invalid(`ssh-rsa key is too large (${bits} bits; at most ${MAX_RSA_BITS})`);
      if (exponent.length > 8 || (exponent[exponent.length - 1] ?? 0) % 2 === 0) {
        throw invalid('ssh-rsa key has an invalid public exponent');
      }
      check({ kty: 'RSA', n: modulus.toString('base64url'), e: exponent.toString('base64url') });
      return;
    }
  }
}

/** A positive SSH mpint without its sign byte. */
function mpintMagnitude(value: Buffer, what: string): Buffer {
  if (value.length === 0 || (value[0] ?? 0) & 0x80) throw invalid(`ssh-rsa ${what} must be a positive integer`);
  if (value[0] === 0 && (value.length === 1 || ((value[1] ?? 0) & 0x80) === 0)) {
    throw invalid(`ssh-rsa ${what} is not minimally encoded`);
  }
  return value[0] === 0 ? value.subarray(1) : value;
}

function bitLength(magnitude: Buffer): number {
  const top = magnitude[0] ?? 0;
  return top === 0 ? 0 : (magnitude.length - 1) * 8 + (32 - Math.clz32(top));
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
