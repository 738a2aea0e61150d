// Desktop entry files (freedesktop Desktop Entry Specification 1.5): the applications a machine
// has installed. The text is untrusted: anyone who can write to a data dir (a package, the user)
// writes it, and what we read from it is shown to peers. So the parser is strict, bounded, and
// throws nothing but EbpError('CATALOG_INVALID').
//
// Supported: comments and blank lines, groups (names unique; [Desktop Entry] required), keys of
// A-Za-z0-9- with an optional [locale] suffix (unique per group), the string escapes \s \n \t \r
// \\ (anything else after a backslash is an error, as in GLib), lists separated by ';' with '\;'
// for a literal semicolon, booleans spelled exactly true/false, and the spec's locale matching
// (lang_COUNTRY@MODIFIER → lang_COUNTRY → lang@MODIFIER → lang → unlocalized) for the
// localestring/iconstring keys Name, GenericName, Comment and Icon.
// Not interpreted: Actions, Keywords, DBusActivatable, StartupNotify, Version, other groups
// (they are still checked for syntax).
import { EbpError } from '../lib/errors.js';

/** Largest desktop file accepted, in UTF-8 bytes. The biggest real ones are a few tens of KiB. */
export const MAX_DESKTOP_FILE_BYTES = 64 * 1024;
/** Most lines accepted in one desktop file. */
export const MAX_DESKTOP_FILE_LINES = 8192;

export interface DesktopEntry {
  /** Desktop file ID, e.g. `org.gnome.Calculator` or `kde-foo` for applications/kde/foo.desktop. */
  readonly id: string;
  readonly type: string;
  readonly name: string;
  readonly genericName?: string;
  readonly comment?: string;
  readonly icon?: string;
  /** Exec after string unescaping; quoting and field codes are for parseExec. */
  readonly exec?: string;
  readonly tryExec?: string;
  readonly path?: string;
  readonly terminal: boolean;
  readonly mimeTypes: string[];
  readonly categories: string[];
  readonly noDisplay: boolean;
  readonly hidden: boolean;
  readonly onlyShowIn: string[];
  readonly notShowIn: string[];
}

export interface ParseOptions {
  readonly id: string;
  /** Preferred locales, best first, as in LANGUAGE / LC_MESSAGES (`de_DE.UTF-8@euro`, `fr`). */
  readonly locales?: readonly string[];
}

const MAIN_GROUP = 'Desktop Entry';
const KEY = /^([A-Za-z0-9-]+)(?:\[([^\]\s[]+)\])?$/;
const GROUP = /^\[([^[\]]+)\]$/;
// C0 controls other than tab, LF and CR, and DEL. NUL gets its own message.
const CONTROL = /[\x01-\x08\x0B\x0C\x0E-\x1F\x7F]/;

function invalid(id: string, message: string, line?: number): EbpError {
  const where = line === undefined ? '' : ` (line ${line})`;
  return new EbpError('CATALOG_INVALID', `desktop entry "${id.slice(0, 200)}"${where}: ${message}`);
}

/** Desktop file ID from a path relative to an `applications/` dir: `kde/foo.desktop` → `kde-foo`. */
export function desktopFileId(relativePath: string): string {
  const withoutSuffix = relativePath.endsWith('.desktop') ? relativePath.slice(0, -'.desktop'.length) : relativePath;
  return withoutSuffix.split('/').filter((part) => part !== '').join('-');
}

/**
 * Locale names to try for one preferred locale, best first, without the unlocalized default.
 * The encoding part (`.UTF-8`) is dropped as the spec says; C and POSIX have no translations.
 */
export function localeCandidates(locale: string): string[] {
  const match = /^([A-Za-z]+)(?:_([A-Za-z0-9]+))?(?:\.[^@]*)?(?:@([A-Za-z0-9_-]+))?$/.exec(locale);
  if (match === null) return [];
  const [, lang = '', country, modifier] = match;
  if (lang === 'C' || lang === 'POSIX') return [];
  const out: string[] = [];
  if (country !== undefined && modifier !== undefined) out.push(`${lang}_${country}@${modifier}`);
  if (country !== undefined) out.push(`${lang}_${country}`);
  if (modifier !== undefined) out.push(`${lang}@${modifier}`);
  out.push(lang);
  return out;
}

/** Preferred locales from the environment: LANGUAGE (a list), then LC_ALL, LC_MESSAGES, LANG. */
export function localesFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const single = [env['LC_ALL'], env['LC_MESSAGES'], env['LANG']].find((value) => value !== undefined && value !== '');
  if (single === undefined || single === 'C' || single === 'POSIX') return [];
  const language = (env['LANGUAGE'] ?? '').split(':').filter((value) => value !== '');
  return [...language, single];
}

/** A string value: \s \n \t \r \\ (and \; inside lists, handled by the caller). */
function unescapeValue(raw: string, fail: (message: string) => EbpError): string {
  if (!raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i += 1) {
    const ch = raw[i] ?? '';
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    i += 1;
    const next = raw[i];
    switch (next) {
      case 's': out += ' '; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case undefined: throw fail('value ends with a lone backslash');
      default: throw fail(`invalid escape sequence "\\${next}"`);
    }
  }
  return out;
}

/** A list value: elements end at an unescaped ';' (the last one optionally); empty ones dropped. */
function unescapeList(raw: string, fail: (message: string) => EbpError): string[] {
  const items: string[] = [];
  let current = '';
  for (let i = 0; i < raw.length; i += 1) {
    const ch = raw[i] ?? '';
    if (ch === ';') {
      items.push(current);
      current = '';
    } else if (ch === '\\' && raw[i + 1] === ';') {
      current += ';';
      i += 1;
    } else if (ch === '\\') {
      // Reuse the string rules for the one escape at i.
      current += unescapeValue(raw.slice(i, i + 2), fail);
      i += 1;
    } else {
      current += ch;
    }
  }
  items.push(current);
  return items.filter((item) => item !== '');
}

interface RawEntry {
  /** Keys of [Desktop Entry] including any `[locale]` suffix → raw (still escaped) value. */
  readonly keys: Map<string, { readonly value: string; readonly line: number }>;
}

function scan(text: string, id: string): RawEntry {
  const fail = (message: string, line?: number): EbpError => invalid(id, message, line);
  if (text.includes('\0')) throw fail('contains a NUL byte');
  if (Buffer.byteLength(text, 'utf8') > MAX_DESKTOP_FILE_BYTES) throw fail(`larger than ${MAX_DESKTOP_FILE_BYTES} bytes`);
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = body.split('\n');
  if (lines.length > MAX_DESKTOP_FILE_LINES) throw fail(`more than ${MAX_DESKTOP_FILE_LINES} lines`);

  const groups = new Set<string>();
  let group: string | undefined;
  let groupKeys = new Set<string>();
  const keys = new Map<string, { value: string; line: number }>();
  for (let index = 0; index < lines.length; index += 1) {
    const number = index + 1;
    let line = lines[index] ?? '';
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.includes('\r')) throw fail('carriage return inside a line', number);
    if (CONTROL.test(line)) throw fail('control character', number);
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    if (trimmed.startsWith('[')) {
      const match = GROUP.exec(trimmed);
      if (match?.[1] === undefined) throw fail(`bad group header ${JSON.stringify(trimmed.slice(0, 80))}`, number);
      if (groups.has(match[1])) throw fail(`group [${match[1]}] appears twice`, number);
      group = match[1];
      groups.add(group);
      groupKeys = new Set();
      continue;
    }
    if (group === undefined) throw fail('key before the first group header', number);
    const eq = line.indexOf('=');
    if (eq === -1) throw fail('line is neither a comment, a group header nor key=value', number);
    const key = line.slice(0, eq).trim();
    if (!KEY.test(key)) throw fail(`bad key name ${JSON.stringify(key.slice(0, 80))}`, number);
    if (groupKeys.has(key)) throw fail(`key ${key} appears twice in [${group}]`, number);
    groupKeys.add(key);
    if (group === MAIN_GROUP) keys.set(key, { value: line.slice(eq + 1).replace(/^[ \t]+/, ''), line: number });
  }
  if (!groups.has(MAIN_GROUP)) throw fail(`no [${MAIN_GROUP}] group`);
  return { keys };
}

/**
 * Parses one desktop file. Throws EbpError('CATALOG_INVALID') for anything malformed, including
 * values this project reads (bad escapes, booleans other than true/false, missing Type or Name).
 */
export function parseDesktopEntry(text: string, options: ParseOptions): DesktopEntry {
  const id = options.id;
  try {
    return build(scan(text, id), id, options.locales ?? []);
  } catch (error) {
    if (error instanceof EbpError && error.code === 'CATALOG_INVALID') throw error;
    throw new EbpError('CATALOG_INVALID', `desktop entry "${id.slice(0, 200)}": cannot be parsed`, { cause: error });
  }
}

function build(raw: RawEntry, id: string, locales: readonly string[]): DesktopEntry {
  const localeOrder = locales.flatMap(localeCandidates);
  const rawValue = (key: string): { value: string; line: number } | undefined => raw.keys.get(key);
  const failAt = (line: number) => (message: string) => invalid(id, message, line);

  const string = (key: string): string | undefined => {
    const found = rawValue(key);
    if (found === undefined) return undefined;
    const value = unescapeValue(found.value, (message) => invalid(id, `${key}: ${message}`, found.line));
    return value === '' ? undefined : value;
  };
  const localized = (key: string): string | undefined => {
    for (const locale of localeOrder) {
      const found = rawValue(`${key}[${locale}]`);
      if (found !== undefined) {
        const value = unescapeValue(found.value, (message) => invalid(id, `${key}[${locale}]: ${message}`, found.line));
        if (value !== '') return value;
      }
    }
    return string(key);
  };
  const boolean = (key: string): boolean => {
    const found = rawValue(key);
    if (found === undefined) return false;
    if (found.value === 'true') return true;
    if (found.value === 'false') return false;
    throw failAt(found.line)(`${key} must be true or false, not ${JSON.stringify(found.value.slice(0, 40))}`);
  };
  const list = (key: string): string[] => {
    const found = rawValue(key);
    return found === undefined ? [] : unescapeList(found.value, (message) => invalid(id, `${key}: ${message}`, found.line));
  };

  const type = string('Type');
  if (type === undefined) throw invalid(id, 'no Type key');
  const name = localized('Name');
  if (name === undefined) throw invalid(id, 'no Name key');
  const genericName = localized('GenericName');
  const comment = localized('Comment');
  const icon = localized('Icon');
  const exec = string('Exec');
  const tryExec = string('TryExec');
  const path = string('Path');
  return {
    id,
    type,
    name,
    ...(genericName === undefined ? {} : { genericName }),
    ...(comment === undefined ? {} : { comment }),
    ...(icon === undefined ? {} : { icon }),
    ...(exec === undefined ? {} : { exec }),
    ...(tryExec === undefined ? {} : { tryExec }),
    ...(path === undefined ? {} : { path }),
    terminal: boolean('Terminal'),
    mimeTypes: list('MimeType'),
    categories: list('Categories'),
    noDisplay: boolean('NoDisplay'),
    hidden: boolean('Hidden'),
    onlyShowIn: list('OnlyShowIn'),
    notShowIn: list('NotShowIn'),
  };
}
