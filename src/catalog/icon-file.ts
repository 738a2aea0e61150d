// The icon file of a shared app, as a peer may fetch it (`ebp:icon APP`): only the icon the
// catalogue resolved for a shared app, only PNG, SVG or XPM, size-capped, with its MIME type.
import { open } from 'node:fs/promises';
import { EbpError } from '../lib/errors.js';
import type { SharedApp } from './catalog.js';

/** Larger icons are refused: a menu needs a few kilobytes, not a way to pull big files. */
export const MAX_ICON_BYTES = 512 * 1024;

export type IconType = 'image/png' | 'image/svg+xml' | 'image/x-xpixmap';

export interface IconFile {
  readonly type: IconType;
  readonly data: Buffer;
}

export function iconTypeOf(path: string): IconType | undefined {
  const lower = path.toLowerCase();
  if (lower.endsWith('.png')) return 'image/png';
  if (lower.endsWith('.svg')) return 'image/svg+xml';
  if (lower.endsWith('.xpm')) return 'image/x-xpixmap';
  return undefined;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Is DATA what TYPE says (PNG signature, an <svg> element, an XPM header)? */
export function iconContentMatches(type: IconType, data: Buffer): boolean {
  if (data.length === 0) return false;
  const head = data.subarray(0, 4096).toString('latin1');
  switch (type) {
    case 'image/png': return data.subarray(0, 8).equals(PNG_SIGNATURE);
    case 'image/svg+xml': return /<svg[\s>]/.test(head);
    case 'image/x-xpixmap': return head.startsWith('/* XPM */');
    default: {
      const never: never = type;
      throw new Error(`unknown icon type ${String(never)}`);
    }
  }
}

/**
 * Reads the app's catalogued icon. Why so narrow: the path comes from the catalogue (resolved at
 * load time from desktop files or the owner's config), never from the request, so a peer can
 * name only an app id and get only that app's icon; the cap bounds what one query can pull; and
 * a file that is not the image its name says (a mis-named or re-pointed link) is not served.
 */
export async function readAppIcon(app: SharedApp): Promise<IconFile> {
  const path = app.iconPath;
  const type = path === undefined ? undefined : iconTypeOf(path);
  if (path === undefined || type === undefined) throw new EbpError('NOT_FOUND', `"${app.id}" has no icon`);
  const handle = await open(path, 'r').catch((error: unknown) => {
    throw new EbpError('NOT_FOUND', `the icon of "${app.id}" cannot be read`, { cause: error });
  });
  try {
    const stat = await handle.stat();
    if (!stat.isFile() || stat.size > MAX_ICON_BYTES) throw new EbpError('NOT_FOUND', `the icon of "${app.id}" is not a file of at most ${MAX_ICON_BYTES} bytes`);
    const data = Buffer.alloc(stat.size);
    const { bytesRead } = await handle.read(data, 0, stat.size, 0);
    const content = data.subarray(0, bytesRead);
    if (!iconContentMatches(type, content)) throw new EbpError('NOT_FOUND', `the icon of "${app.id}" is not a ${type} file`);
    return { type, data: content };
  } finally {
    await handle.close();
  }
}

/** The app's icon, or undefined when it has none that may be served. */
export async function iconIfAny(app: SharedApp | undefined): Promise<IconFile | undefined> {
  if (app === undefined) return undefined;
  try {
    return await readAppIcon(app);
  } catch {
    return undefined;
  }
}

/**
 * A peer's `ebp:icon` answer ({"type", "data" (base64)}), checked like a local file: a known type,
 * at most MAX_ICON_BYTES, content that is what the type says. Undefined when it is none of that.
 */
export function parseIconAnswer(text: string): IconFile | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { type, data } = value as Record<string, unknown>;
  if (typeof type !== 'string' || typeof data !== 'string') return undefined;
  if (data.length > Math.ceil(MAX_ICON_BYTES / 3) * 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) return undefined;
  const known = iconTypeOf(`.${type.split('/')[1]?.replace('svg+xml', 'svg').replace('x-xpixmap', 'xpm') ?? ''}`);
  if (known === undefined || known !== type) return undefined;
  const bytes = Buffer.from(data, 'base64');
  return iconContentMatches(known, bytes) ? { type: known, data: bytes } : undefined;
}

/** What a browser's <img> can show (PNG, SVG); an XPM icon is left out of the page. */
export function browserIcon(icon: IconFile | undefined): IconFile | undefined {
  return icon?.type === 'image/png' || icon?.type === 'image/svg+xml' ? icon : undefined;
}
