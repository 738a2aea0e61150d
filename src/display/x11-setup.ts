// The X11 connection setup, the first bytes an X client sends (X11 protocol, "Connection
// Setup"): byte order, protocol version, then the authorization protocol name and data, each
// padded to 4 bytes. The person's side reads it from every forwarded connection, checks the
// sandbox's fake cookie and swaps in the real one. It comes from the remote app: hostile input,
// parsed with every length bounded. Pure: no I/O.
import { timingSafeEqual } from 'node:crypto';

/** Fixed part: byte order, unused, major, minor, name length, data length, unused. */
export const SETUP_HEADER_BYTES = 12;
/** Longest authorization name and data accepted (real ones are 18 and 16 bytes). */
export const MAX_AUTH_NAME = 64;
export const MAX_AUTH_DATA = 256;
/** A setup longer than this can never be valid: waiting for more would only buffer an attack. */
export const MAX_SETUP_BYTES = SETUP_HEADER_BYTES + MAX_AUTH_NAME + MAX_AUTH_DATA;

export interface ConnectionSetup {
  /** 'B' (MSB first) or 'l' (LSB first). */
  readonly byteOrder: 'B' | 'l';
  readonly major: number;
  readonly minor: number;
  readonly authName: string;
  readonly authData: Buffer;
  /** Bytes of the setup, padding included; what follows belongs to the X protocol stream. */
  readonly length: number;
}

export type SetupParse =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'complete'; readonly setup: ConnectionSetup };

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

export function parseConnectionSetup(bytes: Buffer): SetupParse {
  if (bytes.length === 0) return { kind: 'incomplete' };
  const order = bytes[0];
  if (order !== 0x42 && order !== 0x6c) return { kind: 'invalid', reason: `byte-order byte 0x${(order ?? 0).toString(16)} is neither 'B' nor 'l'` };
  if (bytes.length < SETUP_HEADER_BYTES) return { kind: 'incomplete' };
  const big = order === 0x42;
  const u16 = (offset: number): number => (big ? bytes.readUInt16BE(offset) : bytes.readUInt16LE(offset));
  const major = u16(2);
  const minor = u16(4);
  const nameLength = u16(6);
  const dataLength = u16(8);
  if (major !== 11) return { kind: 'invalid', reason: `protocol version ${major}.${minor} is not X11` };
  if (nameLength > MAX_AUTH_NAME) return { kind: 'invalid', reason: `authorization name of ${nameLength} bytes (at most ${MAX_AUTH_NAME})` };
  if (dataLength > MAX_AUTH_DATA) return { kind: 'invalid', reason: `authorization data of ${dataLength} bytes (at most ${MAX_AUTH_DATA})` };
  const nameStart = SETUP_HEADER_BYTES;
  const dataStart = nameStart + nameLength + pad4(nameLength);
  const length = dataStart + dataLength + pad4(dataLength);
  if (bytes.length < length) return { kind: 'incomplete' };
  return {
    kind: 'complete',
    setup: {
      byteOrder: big ? 'B' : 'l',
      major,
      minor,
      authName: bytes.toString('latin1', nameStart, nameStart + nameLength),
      authData: Buffer.from(bytes.subarray(dataStart, dataStart + dataLength)),
      length,
    },
  };
}

/** The same setup (byte order, version) with another authorization, padded as the protocol wants. */
export function encodeConnectionSetup(setup: Pick<ConnectionSetup, 'byteOrder' | 'major' | 'minor'>, authName: string, authData: Buffer): Buffer {
  const name = Buffer.from(authName, 'latin1');
  if (name.length > 0xffff || authData.length > 0xffff) throw new RangeError('authorization too long');
  const out = Buffer.alloc(SETUP_HEADER_BYTES + name.length + pad4(name.length) + authData.length + pad4(authData.length));
  const big = setup.byteOrder === 'B';
  const u16 = (value: number, offset: number): void => {
    if (big) out.writeUInt16BE(value, offset);
    else out.writeUInt16LE(value, offset);
  };
  out[0] = big ? 0x42 : 0x6c;
  u16(setup.major, 2);
  u16(setup.minor, 4);
  u16(name.length, 6);
  u16(authData.length, 8);
  name.copy(out, SETUP_HEADER_BYTES);
  authData.copy(out, SETUP_HEADER_BYTES + name.length + pad4(name.length));
  return out;
}

/** Constant-time comparison of a presented cookie with the expected one. */
export function cookieMatches(presented: Buffer, expected: Buffer): boolean {
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}
