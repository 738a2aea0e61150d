// The TXT record of an eBrainPool service (RFC 6763 §6): what we announce, and strict parsing of
// what others announce. Our fields are validated exactly; a field that fails is dropped and the
// peer is then "unverified". The raw key/value map keeps every well-formed pair for diagnostics.
import { EbpError } from '../lib/errors.js';
import { sanitizeText } from './names.js';

/** What we announce in TXT (small, ASCII, validated). */
export interface PeerTxt {
  /** Protocol version, decimal. */
  readonly v: string;
  /** Host key fingerprint: SHA256:<43 base64 characters>. */
  readonly id: string;
  /** Number of shared applications, 0..100000. */
  readonly apps: number;
  /** Catalogue version, lower-case hex (16 digits from us). */
  readonly cat: string;
  /** "running/capacity", e.g. "2/32". */
  readonly load: string;
}

export const TXT_LIMITS = {
  /** Total TXT rdata we accept (RFC 6763 §6.2 suggests ≤ 1300 bytes to fit one packet). */
  maxBytes: 1300,
  /** Key/value pairs kept in `raw`. */
  maxKeys: 64,
} as const;

const FIELD_PATTERNS = {
  v: /^\d{1,3}$/,
  id: /^SHA256:[A-Za-z0-9+/]{43}$/,
  apps: /^\d{1,6}$/,
  cat: /^[0-9a-f]{1,32}$/,
  load: /^\d{1,6}\/\d{1,6}$/,
} as const;

const MAX_APPS = 100_000;

/** Why `txt` cannot be announced, or undefined when it is fine. */
export function peerTxtProblem(txt: PeerTxt): string | undefined {
  if (typeof txt.v !== 'string' || !FIELD_PATTERNS.v.test(txt.v)) return 'v must be 1 to 3 decimal digits';
  if (typeof txt.id !== 'string' || !FIELD_PATTERNS.id.test(txt.id)) return 'id must be SHA256:<43 base64 characters>';
  if (!Number.isSafeInteger(txt.apps) || txt.apps < 0 || txt.apps > MAX_APPS) return `apps must be an integer 0..${MAX_APPS}`;
  if (typeof txt.cat !== 'string' || !FIELD_PATTERNS.cat.test(txt.cat)) return 'cat must be 1 to 32 lower-case hex digits';
  if (typeof txt.load !== 'string' || !FIELD_PATTERNS.load.test(txt.load)) return 'load must be "running/capacity"';
  return undefined;
}

/** The TXT strings for our record; throws EbpError CONFIG_INVALID when a field is invalid. */
export function encodePeerTxt(txt: PeerTxt): Buffer[] {
  const problem = peerTxtProblem(txt);
  if (problem !== undefined) throw new EbpError('CONFIG_INVALID', `discovery: invalid TXT data: ${problem}`);
  return [`v=${txt.v}`, `id=${txt.id}`, `apps=${txt.apps}`, `cat=${txt.cat}`, `load=${txt.load}`].map((s) =>
    Buffer.from(s, 'ascii'),
  );
}

export interface ParsedTxt {
  /** Our fields that passed validation. */
  readonly fields: Partial<PeerTxt>;
  /** Every well-formed key (lower case) → value (UTF-8, control characters replaced). */
  readonly raw: Readonly<Record<string, string>>;
  /** All five of our fields are present and valid. */
  readonly verified: boolean;
}

const EMPTY: ParsedTxt = Object.freeze({ fields: Object.freeze({}), raw: Object.freeze(Object.create(null) as Record<string, string>), verified: false });

export function emptyTxt(): ParsedTxt {
  return EMPTY;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses TXT strings. Oversized records yield the empty result. Keys: printable ASCII except '='
 * (RFC 6763 §6.4), case-insensitive, only the first occurrence counts; a string without '=' is a
 * boolean attribute (value ''); values that are not valid UTF-8 are dropped.
 */
export function parseTxt(strings: readonly Buffer[]): ParsedTxt {
  let total = 0;
  for (const text of strings) total += text.length + 1;
  if (total > TXT_LIMITS.maxBytes) return EMPTY;
  const raw = Object.create(null) as Record<string, string>;
  let keys = 0;
  for (const text of strings) {
    if (keys >= TXT_LIMITS.maxKeys) break;
    if (text.length === 0) continue;
    const equals = text.indexOf(0x3d);
    const keyBytes = equals < 0 ? text : text.subarray(0, equals);
    if (keyBytes.length === 0 || keyBytes.some((byte) => byte < 0x20 || byte > 0x7e)) continue;
    const key = keyBytes.toString('ascii').toLowerCase();
    if (key in raw) continue;
    let value = '';
    if (equals >= 0) {
      try {
        value = utf8.decode(text.subarray(equals + 1));
      } catch {
        continue;
      }
    }
    raw[key] = sanitizeText(value);
    keys += 1;
  }
  const fields: { -readonly [K in keyof PeerTxt]?: PeerTxt[K] } = {};
  const get = (key: keyof PeerTxt): string | undefined => {
    const value = raw[key];
    return value !== undefined && FIELD_PATTERNS[key].test(value) ? value : undefined;
  };
  const v = get('v');
  if (v !== undefined) fields.v = v;
  const id = get('id');
  if (id !== undefined) fields.id = id;
  const apps = get('apps');
  if (apps !== undefined && Number(apps) <= MAX_APPS) fields.apps = Number(apps);
  const cat = get('cat');
  if (cat !== undefined) fields.cat = cat;
  const load = get('load');
  if (load !== undefined) fields.load = load;
  const verified = fields.v !== undefined && fields.id !== undefined && fields.apps !== undefined && fields.cat !== undefined && fields.load !== undefined;
  return { fields: Object.freeze(fields), raw: Object.freeze(raw), verified };
}
