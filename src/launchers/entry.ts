// The Desktop Entry text of a launcher for an app on a peer: a pure function from what the peer
// told us (hostile: names, comments, MIME types, categories) and where it runs, to a file that
// passes desktop-file-validate. Every value is cleaned and escaped per the Desktop Entry
// Specification; Exec arguments are quoted per its Exec rules, so that nothing a peer sends can
// add a key, a group, a field code or an argument.
import { createHash } from 'node:crypto';
import type { TakesFiles } from '../catalog/exec.js';
import type { AppView } from '../lib/views.js';

/** What a launcher knows about the app and the peer that runs it. */
export interface LauncherSpec {
  /** The peer's key fingerprint (`SHA256:...`): the launcher runs the app on this key only. */
  readonly fingerprint: string;
  /** HOST:PORT where the peer was last reached: the fallback when discovery does not find it. */
  readonly address: string;
  /** The peer's display name (from the peer: hostile). */
  readonly peerName: string;
  /** The app as the peer described it (its icon, if any, is at iconPath). */
  readonly app: Omit<AppView, 'hasIcon'>;
  /** Absolute path of the stored icon, if any. */
  readonly iconPath?: string;
  /** The command that starts ebp: [node, /abs/bin/ebp] or [/abs/ebp]; absolute paths. */
  readonly ebpCommand: readonly string[];
  /** A state folder given explicitly at install time: the launcher uses the same one. */
  readonly stateDir?: string;
}

export const MAX_NAME_CHARS = 80;
export const MAX_COMMENT_CHARS = 200;
const MAX_LIST_ITEMS = 64;
const MIME = /^[A-Za-z0-9!#$&^_.+-]{1,127}\/[A-Za-z0-9!#$&^_.+-]{1,127}$/;
const CATEGORY = /^[A-Za-z0-9_-]{1,64}$/;
const APP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
/** The registered main categories. Additional ones are dropped: desktop-file-validate wants each
 * next to a related main one, which a peer's list may not satisfy. */
const MAIN_CATEGORIES = new Set(['AudioVideo', 'Audio', 'Video', 'Development', 'Education', 'Game', 'Graphics', 'Network', 'Office', 'Science', 'Settings', 'System', 'Utility']);

/**
 * Text from a peer made safe for one line of a desktop file: control characters (newlines would
 * start a new key) and Unicode format/line separators removed, whitespace collapsed, capped.
 */
export function cleanText(text: string, maxChars: number): string {
  const cleaned = text
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(/\s+/gu, ' ')
    .trim();
  // Cut between graphemes, never inside one (an emoji or a letter with its accents).
  const graphemes = Array.from(new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(cleaned), (part) => part.segment);
  return graphemes.length <= maxChars ? cleaned : `${graphemes.slice(0, maxChars - 1).join('').trimEnd()}…`;
}

/** A string/localestring value per the spec's escapes (the text has no control characters left). */
export function escapeValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/^ /, '\\s');
}

/** The spec's reserved characters: an argument holding any of them must be quoted. */
const RESERVED = /[\s"'\\><~|&;$*?#()`]/;

/**
 * One Exec argument per the spec: quoted with double quotes when it holds a reserved character
 * (inside, `"`, `` ` ``, `$` and `\` take a backslash); `%` doubled so that it is never a field
 * code. The result is then a string value, so escapeValue applies on top (done by the caller).
 */
export function quoteExecArg(arg: string): string {
  if (/[\p{Cc}]/u.test(arg)) throw new Error('an Exec argument cannot hold control characters');
  const percent = arg.replace(/%/g, '%%');
  if (percent !== '' && !RESERVED.test(percent)) return percent;
  return `"${percent.replace(/["`$\\]/g, (c) => `\\${c}`)}"`;
}

/** The field code that passes the person's files, matching what the remote app takes. */
export function fieldCode(takes: TakesFiles): string | undefined {
  switch (takes) {
    case 'none': return undefined;
    case 'file': return '%f';
    case 'files': return '%F';
    case 'url': return '%u';
    case 'urls': return '%U';
    default: {
      const never: never = takes;
      throw new Error(`unknown TakesFiles ${String(never)}`);
    }
  }
}

/** A short, filename-safe tag for a peer key (hex of a hash of the fingerprint). */
export function peerTag(fingerprint: string): string {
  return createHash('sha256').update(fingerprint).digest('hex').slice(0, 12);
}

/** The desktop file id (its file name): `ebp-<peer tag>-<app id>.desktop`. */
export function desktopFileId(fingerprint: string, appId: string): string {
  if (!APP_ID.test(appId)) throw new Error(`not an app id: ${JSON.stringify(appId.slice(0, 64))}`);
  return `ebp-${peerTag(fingerprint)}-${appId}.desktop`;
}

/** The argv a launcher runs (before Exec quoting): ebp run on that key, fallback address, files. */
export function launcherArgv(spec: LauncherSpec): string[] {
  return [
    ...spec.ebpCommand,
    ...(spec.stateDir === undefined ? [] : ['--state-dir', spec.stateDir]),
    'run', '--notify-errors', '--address', spec.address, spec.fingerprint, spec.app.id,
  ];
}

function checkSpec(spec: LauncherSpec): void {
  if (!FINGERPRINT.test(spec.fingerprint)) throw new Error(`not a key fingerprint: ${JSON.stringify(spec.fingerprint.slice(0, 80))}`);
  if (!APP_ID.test(spec.app.id)) throw new Error(`not an app id: ${JSON.stringify(spec.app.id.slice(0, 64))}`);
  if (!/^[A-Za-z0-9.[\]:-]{1,300}:\d{1,5}$/.test(spec.address)) throw new Error(`not HOST:PORT: ${JSON.stringify(spec.address.slice(0, 80))}`);
  if (spec.ebpCommand.length === 0 || !spec.ebpCommand.every((word) => word.startsWith('/'))) throw new Error('the ebp command must be absolute paths');
  if (spec.iconPath !== undefined && !spec.iconPath.startsWith('/')) throw new Error('the icon path must be absolute');
}

/** The main categories among the peer's (menus file the launcher under them; none: "Other"). */
function cleanCategories(categories: readonly string[]): string[] {
  const main = [...new Set(categories.slice(0, MAX_LIST_ITEMS))].filter((c) => CATEGORY.test(c) && MAIN_CATEGORIES.has(c));
  // The spec makes Audio and Video imply AudioVideo (the validator insists).
  if ((main.includes('Audio') || main.includes('Video')) && !main.includes('AudioVideo')) main.unshift('AudioVideo');
  return main;
}

/** The file's text. Throws on a spec that ebp itself got wrong (never on hostile peer text). */
export function launcherEntry(spec: LauncherSpec): string {
  checkSpec(spec);
  const peer = cleanText(spec.peerName, 48) || 'a peer';
  const appName = cleanText(spec.app.name, MAX_NAME_CHARS) || spec.app.id;
  const comment = cleanText(spec.app.comment, MAX_COMMENT_CHARS);
  const code = fieldCode(spec.app.takesFiles);
  const mimeTypes = code === undefined ? [] : [...new Set(spec.app.mimeTypes.slice(0, 256))].filter((m) => MIME.test(m));
  const categories = cleanCategories(spec.app.categories);
  const exec = [...launcherArgv(spec).map(quoteExecArg), ...(code === undefined ? [] : [code])].join(' ');
  const lines = [
    '[Desktop Entry]',
    'Type=Application',
    `Name=${escapeValue(`${appName} (on ${peer})`)}`,
    `GenericName=${escapeValue(`${appName} on ${peer}`)}`,
    ...(comment === '' ? [] : [`Comment=${escapeValue(`${comment} (runs on ${peer})`)}`]),
    ...(spec.iconPath === undefined ? [] : [`Icon=${escapeValue(spec.iconPath)}`]),
    `Exec=${escapeValue(exec)}`,
    `Terminal=${spec.app.terminal ? 'true' : 'false'}`,
    ...(categories.length === 0 ? [] : [`Categories=${categories.join(';')};`]),
    ...(mimeTypes.length === 0 ? [] : [`MimeType=${mimeTypes.join(';')};`]),
    'StartupNotify=false',
    `X-Ebp-Peer=${spec.fingerprint}`,
    `X-Ebp-Peer-Name=${escapeValue(peer)}`,
    `X-Ebp-Address=${spec.address}`,
    `X-Ebp-App=${spec.app.id}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Our own keys read back from a launcher file (for `ebp installed` / uninstall). */
export interface LauncherRecord {
  readonly name: string;
  readonly fingerprint: string;
  readonly peerName: string;
  readonly address: string;
  readonly appId: string;
  readonly iconPath?: string;
}

function unescapeValue(text: string): string {
  return text.replace(/\\([sntr\\])/g, (_, c: string) => ({ s: ' ', n: '\n', t: '\t', r: '\r', '\\': '\\' })[c] ?? c);
}

/** Reads a file we wrote; undefined when it is not an ebp launcher (or not well-formed). */
export function parseLauncher(text: string): LauncherRecord | undefined {
  const values = new Map<string, string>();
  let inMain = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('[')) {
      inMain = line === '[Desktop Entry]';
      continue;
    }
    const eq = line.indexOf('=');
    if (!inMain || eq <= 0) continue;
    const key = line.slice(0, eq);
    if (!values.has(key)) values.set(key, unescapeValue(line.slice(eq + 1)));
  }
  const fingerprint = values.get('X-Ebp-Peer');
  const appId = values.get('X-Ebp-App');
  const address = values.get('X-Ebp-Address');
  if (fingerprint === undefined || !FINGERPRINT.test(fingerprint) || appId === undefined || !APP_ID.test(appId) || address === undefined) return undefined;
  const icon = values.get('Icon');
  return {
    name: values.get('Name') ?? appId,
    fingerprint,
    peerName: values.get('X-Ebp-Peer-Name') ?? '',
    address,
    appId,
    ...(icon === undefined || !icon.startsWith('/') ? {} : { iconPath: icon }),
  };
}
