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

/** Above this, bytes of an unfinished message go on anyway (a large image need not wait whole). */
const MAX_HELD_BYTES = 64 * 1024;
const GENERIC_EVENT = 35;

/**
 * Cuts the X server's stream (to the app) at message boundaries, so that a reply the server
 * wrote in pieces (Xvfb writes a GetImage reply as header and data, two writes) travels as one
 * SSH packet: one wake-up and one write on each side instead of two. Messages: the connection
 * setup answer (8 bytes + 4 × its length at offset 6), then 32-byte errors and events, replies and
 * generic events with 4 × the length at offset 4 after their first 32 bytes. A message longer
 * than MAX_HELD_BYTES is passed on in parts as it comes. The stream comes from the person's own
 * X server; a length that makes no sense ends the framing, and everything passes as it comes.
 */
export class ServerMessageFramer {
  readonly #big: boolean;
  #held: Buffer = Buffer.alloc(0);
  /** Bytes still to pass of a message already passed in part (a large one). */
  #passing = 0;
  #setupDone = false;
  #broken = false;

  constructor(byteOrder: 'B' | 'l') {
    this.#big = byteOrder === 'B';
  }

  /** Takes a chunk from the server; returns what can go on now (possibly empty). */
  push(chunk: Buffer): Buffer {
    if (this.#broken) return chunk;
    const out: Buffer[] = [];
    let bytes = chunk;
    if (this.#passing > 0) {
      const part = Math.min(this.#passing, bytes.length);
      out.push(bytes.subarray(0, part));
      this.#passing -= part;
      bytes = bytes.subarray(part);
    }
    if (this.#held.length > 0) bytes = Buffer.concat([this.#held, bytes]);
    let offset = 0;
    for (;;) {
      const size = this.#messageSize(bytes, offset);
      if (size === undefined) break;
      if (size < 0) {
        this.#broken = true;
        offset = bytes.length;
        break;
      }
      const available = bytes.length - offset;
      if (available < size && available <= MAX_HELD_BYTES) break;
      if (!this.#setupDone) this.#setupDone = bytes[offset] === 1;
      if (available < size) {
        this.#passing = size - available;
        offset = bytes.length;
        break;
      }
      offset += size;
    }
    out.push(bytes.subarray(0, offset));
    this.#held = offset < bytes.length ? Buffer.from(bytes.subarray(offset)) : Buffer.alloc(0);
    const ready = out.filter((part) => part.length > 0);
    return ready.length === 1 ? ready[0] ?? Buffer.alloc(0) : Buffer.concat(ready);
  }

  /** What is held back (the stream ended): passed on as it is. */
  flush(): Buffer {
    const held = this.#held;
    this.#held = Buffer.alloc(0);
    return held;
  }

  /** The size of the message at `offset`; undefined: its header is not all here; -1: nonsense. */
  #messageSize(bytes: Buffer, offset: number): number | undefined {
    if (!this.#setupDone) {
      if (bytes.length - offset < 8) return undefined;
      if ((bytes[offset] ?? 255) > 2) return -1;
      return 8 + 4 * (this.#big ? bytes.readUInt16BE(offset + 6) : bytes.readUInt16LE(offset + 6));
    }
    if (bytes.length - offset < 32) return undefined;
    const type = (bytes[offset] ?? 0) & 0x7f;
    if (type !== 1 && type !== GENERIC_EVENT) return 32;
    const units = this.#big ? bytes.readUInt32BE(offset + 4) : bytes.readUInt32LE(offset + 4);
    // A reply of more than 1 GiB is not from a real X server.
    return units > 0x10000000 ? -1 : 32 + 4 * units;
  }
}
