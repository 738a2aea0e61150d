// An app's icon as bytes for the web page: read from this machine's icon file, or received from a
// peer (`ebp:icon APP`). Only PNG and SVG, at most 256 KiB; a peer's answer is checked the same
// way, since it is untrusted input (the page shows icons only through <img>, which runs no script).
import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';

export interface IconData {
  readonly type: 'image/png' | 'image/svg+xml';
  readonly data: Buffer;
}

export const MAX_ICON_BYTES = 256 * 1024;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The bytes are what the type says (PNG signature; SVG: XML text with an <svg element). */
export function iconValid(type: string, data: Buffer): type is IconData['type'] {
  if (data.length === 0 || data.length > MAX_ICON_BYTES) return false;
  if (type === 'image/png') return data.subarray(0, 8).equals(PNG_MAGIC);
  if (type === 'image/svg+xml') return data.includes('<svg');
  return false;
}

export function readIconFile(path: string | undefined): IconData | undefined {
  if (path === undefined) return undefined;
  const type = extname(path) === '.png' ? 'image/png' : extname(path) === '.svg' ? 'image/svg+xml' : undefined;
  if (type === undefined) return undefined;
  try {
    if (statSync(path).size > MAX_ICON_BYTES) return undefined;
    const data = readFileSync(path);
    return iconValid(type, data) ? { type, data } : undefined;
  } catch {
    return undefined;
  }
}

/** Parses a peer's `ebp:icon` answer: {"type","data" (base64)}; undefined when it is not a valid icon. */
export function parseIconAnswer(text: string): IconData | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { type, data } = value as Record<string, unknown>;
  if (typeof type !== 'string' || typeof data !== 'string' || data.length > (MAX_ICON_BYTES * 4) / 3 + 4) return undefined;
  const bytes = Buffer.from(data, 'base64');
  return iconValid(type, bytes) ? { type, data: bytes } : undefined;
}
