// X11 authorization data: MIT-MAGIC-COOKIE-1 cookies (hex on the SSH wire, raw bytes in X) and
// the Xauthority file format that Xlib reads (a list of entries, each five length-prefixed
// fields in big-endian order). Pure: no I/O.
import { randomBytes } from 'node:crypto';
import { EbpError } from '../lib/errors.js';

/** The only X11 authorization protocol forwarded: a shared secret the X server compares. */
export const MIT_COOKIE = 'MIT-MAGIC-COOKIE-1';

/** xauth makes 16-byte cookies; anything from 8 to 64 bytes is accepted, nothing else. */
export const MIN_COOKIE_BYTES = 8;
export const MAX_COOKIE_BYTES = 64;

/** Xauthority address families (Xlib's Xauth.h). */
export const FAMILY_LOCAL = 256;
export const FAMILY_WILD = 65535;

export interface XauthEntry {
  readonly family: number;
  readonly address: Buffer;
  /** The display number as text ("0"); empty matches any. */
  readonly number: string;
  readonly name: string;
  readonly data: Buffer;
}

/** A fresh random cookie (the fake one a sandbox gets, never valid on any real display). */
export function randomCookie(bytes = 16): Buffer {
  return randomBytes(bytes);
}

/** Parses a hex cookie as sent in an SSH x11-req; throws USAGE naming what is wrong. */
export function parseHexCookie(text: string): Buffer {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(text)) {
    throw new EbpError('USAGE', 'the X11 cookie is not hexadecimal', { hint: 'send an MIT-MAGIC-COOKIE-1 cookie as hex digits' });
  }
  const cookie = Buffer.from(text, 'hex');
  if (cookie.length < MIN_COOKIE_BYTES || cookie.length > MAX_COOKIE_BYTES) {
    throw new EbpError('USAGE', `the X11 cookie has ${cookie.length} bytes; ${MIN_COOKIE_BYTES} to ${MAX_COOKIE_BYTES} are accepted`);
  }
  return cookie;
}

function field(value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError('Xauthority field longer than 65535 bytes');
  const length = Buffer.allocUnsafe(2);
  length.writeUInt16BE(value.length, 0);
  return Buffer.concat([length, value]);
}

export function encodeXauthority(entries: readonly XauthEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const family = Buffer.allocUnsafe(2);
    family.writeUInt16BE(entry.family, 0);
    parts.push(family, field(entry.address), field(Buffer.from(entry.number, 'latin1')), field(Buffer.from(entry.name, 'latin1')), field(entry.data));
  }
  return Buffer.concat(parts);
}

/** Decodes an Xauthority file; a truncated entry is an error (Xlib stops there too). */
export function decodeXauthority(file: Buffer): XauthEntry[] {
  const entries: XauthEntry[] = [];
  let offset = 0;
  const take = (): Buffer => {
    if (offset + 2 > file.length) throw new RangeError('truncated Xauthority entry');
    const length = file.readUInt16BE(offset);
    if (offset + 2 + length > file.length) throw new RangeError('truncated Xauthority entry');
    const value = file.subarray(offset + 2, offset + 2 + length);
    offset += 2 + length;
    return value;
  };
  while (offset < file.length) {
    if (offset + 2 > file.length) throw new RangeError('truncated Xauthority entry');
    const family = file.readUInt16BE(offset);
    offset += 2;
    const address = take();
    const number = take().toString('latin1');
    const name = take().toString('latin1');
    const data = take();
    entries.push({ family, address: Buffer.from(address), number, name, data: Buffer.from(data) });
  }
  return entries;
}

/**
 * The Xauthority a sandbox gets: one entry, any host ("wild"), its display number, the fake
 * cookie. Xlib picks it for DISPLAY=:N whatever the sandbox's host name is.
 */
export function sandboxXauthority(displayNumber: number, cookie: Buffer): Buffer {
  return encodeXauthority([{ family: FAMILY_WILD, address: Buffer.alloc(0), number: String(displayNumber), name: MIT_COOKIE, data: cookie }]);
}
