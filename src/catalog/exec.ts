// The Exec key (Desktop Entry Specification 1.5, "The Exec key"): split into argv words by the
// spec's quoting rules, then field codes expanded with the caller's arguments.
//
// The arguments a peer sends are DATA. Each one becomes exactly one argv element: never split,
// never re-scanned for field codes, never given to a shell. Nothing here runs anything.
//
// Quoting: words are separated by spaces; a reserved character (space, tab, newline, " ' \ > < ~
// | & ; $ * ? # ( ) `) must be inside double quotes; inside them a backslash may escape only
// " ` $ and \ (any other backslash sequence is an error). An unescaped $ or ` inside quotes is
// taken literally: nothing expands it anyway. A quoted part may touch unquoted text
// (`--title="A B"` → `--title=A B`), as GLib allows. The string-level escapes (\s, \\ ...) were
// already undone by the desktop-entry parser, so a literal backslash in a quoted word is written
// `\\\\` in the file.
//
// Field codes: %f %u (one file/URL; may be part of a word), %F %U (all of them; must be a word of
// their own), %i (`--icon NAME`; a word of its own), %c (the name), %k (the desktop file), %%,
// and the deprecated %d %D %n %N %v %m, which are removed. At most one of %f %F %u %U. Any other
// %-sequence makes the Exec invalid, as the spec requires. Field codes inside quotes are treated
// like anywhere else (the spec leaves that undefined).
import { EbpError } from '../lib/errors.js';
import type { TakesFiles } from '../lib/views.js';

export type { TakesFiles } from '../lib/views.js';

export interface ExpandContext {
  /** Files or URLs from the requester; each stays one argv element. */
  readonly args: readonly string[];
  /** The (translated) Name, for %c. */
  readonly name: string;
  /** The Icon key, for %i. */
  readonly icon?: string;
  /** Path of the desktop file, for %k. */
  readonly desktopFile?: string;
}

const MAX_EXEC_LENGTH = 16 * 1024;
const RESERVED = new Set([' ', '\t', '\n', '\r', '"', "'", '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(', ')', '`']);
const QUOTED_ESCAPES = new Set(['"', '`', '$', '\\']);
const FILE_CODES = new Set(['f', 'F', 'u', 'U']);
const DEPRECATED_CODES = new Set(['d', 'D', 'n', 'N', 'v', 'm']);
const KNOWN_CODES = new Set([...FILE_CODES, ...DEPRECATED_CODES, 'i', 'c', 'k', '%']);
/** Codes that expand to a list of words and so cannot be part of a larger word. */
const WHOLE_WORD_CODES = new Set(['F', 'U', 'i']);

function invalid(message: string): EbpError {
  return new EbpError('CATALOG_INVALID', `Exec: ${message}`);
}

type Segment = { readonly text: string } | { readonly code: string };

/** Splits one word into literal text and field codes; throws on unknown or dangling codes. */
function segments(word: string): Segment[] {
  const out: Segment[] = [];
  let text = '';
  for (let i = 0; i < word.length; i += 1) {
    const ch = word[i] ?? '';
    if (ch !== '%') {
      text += ch;
      continue;
    }
    const code = word[i + 1];
    if (code === undefined) throw invalid(`"%" at the end of ${JSON.stringify(word.slice(0, 80))}`);
    if (!KNOWN_CODES.has(code)) throw invalid(`unknown field code %${code}`);
    i += 1;
    if (code === '%') {
      text += '%';
      continue;
    }
    if (text !== '') out.push({ text });
    text = '';
    out.push({ code });
  }
  if (text !== '') out.push({ text });
  return out;
}

function validateCodes(words: readonly string[]): void {
  let fileCodes = 0;
  for (const word of words) {
    const parts = segments(word);
    for (const part of parts) {
      if (!('code' in part)) continue;
      if (FILE_CODES.has(part.code)) fileCodes += 1;
      if (WHOLE_WORD_CODES.has(part.code) && word !== `%${part.code}`) {
        throw invalid(`%${part.code} must be a word of its own, not part of ${JSON.stringify(word.slice(0, 80))}`);
      }
    }
  }
  if (fileCodes > 1) throw invalid('more than one of %f %F %u %U');
}

/**
 * Splits an Exec value (already string-unescaped) into words. Throws EbpError('CATALOG_INVALID')
 * for bad quoting, reserved characters outside quotes, unknown field codes, an empty command, or
 * a first word that is an environment assignment (`FOO=1 app`) or contains a field code.
 */
export function parseExec(exec: string): string[] {
  if (exec.length > MAX_EXEC_LENGTH) throw invalid(`longer than ${MAX_EXEC_LENGTH} characters`);
  if (exec.includes('\0')) throw invalid('contains a NUL byte');
  const words: string[] = [];
  let i = 0;
  while (i < exec.length) {
    if (exec[i] === ' ') {
      i += 1;
      continue;
    }
    let word = '';
    while (i < exec.length && exec[i] !== ' ') {
      const ch = exec[i] ?? '';
      if (ch === '"') {
        i += 1;
        let closed = false;
        while (i < exec.length) {
          const inner = exec[i] ?? '';
          if (inner === '"') {
            closed = true;
            i += 1;
            break;
          }
          if (inner === '\\') {
            const next = exec[i + 1];
            if (next === undefined || !QUOTED_ESCAPES.has(next)) {
              throw invalid(`inside quotes a backslash may only escape " \` $ or \\, not ${next === undefined ? 'the end' : JSON.stringify(next)}`);
            }
            word += next;
            i += 2;
            continue;
          }
          word += inner;
          i += 1;
        }
        if (!closed) throw invalid('unterminated double quote');
        continue;
      }
      if (RESERVED.has(ch)) throw invalid(`reserved character ${JSON.stringify(ch)} outside double quotes`);
      word += ch;
      i += 1;
    }
    words.push(word);
  }
  const program = words[0];
  if (program === undefined || program === '') throw invalid('no command');
  if (program.includes('=')) throw invalid(`the command ${JSON.stringify(program.slice(0, 80))} looks like an environment assignment; Exec must name a program`);
  if (program.includes('%')) throw invalid('the command itself cannot be a field code');
  validateCodes(words);
  return words;
}

/** Which file/URL field code the command has, if any. */
export function execTakesFiles(tokens: readonly string[]): TakesFiles {
  for (const word of tokens) {
    for (const part of segments(word)) {
      if (!('code' in part)) continue;
      switch (part.code) {
        case 'f': return 'file';
        case 'F': return 'files';
        case 'u': return 'url';
        case 'U': return 'urls';
        default: break;
      }
    }
  }
  return 'none';
}

/**
 * Expands field codes. %f/%u take the first argument only (any others are dropped: the app
 * declared it opens one); a word holding %f/%u with no argument is dropped whole. %F/%U become
 * one word per argument. When the command has none of %f %F %u %U, the arguments are appended.
 * Throws EbpError('USAGE') for an argument with a NUL byte (it cannot be an argv element).
 */
export function expandExec(tokens: readonly string[], ctx: ExpandContext): string[] {
  validateCodes(tokens);
  for (const arg of ctx.args) {
    if (arg.includes('\0')) throw new EbpError('USAGE', 'an argument contains a NUL byte');
  }
  const out: string[] = [];
  for (const word of tokens) {
    const parts = segments(word);
    const only = parts.length === 1 ? parts[0] : undefined;
    if (only !== undefined && 'code' in only) {
      if (only.code === 'F' || only.code === 'U') {
        out.push(...ctx.args);
        continue;
      }
      if (only.code === 'i') {
        if (ctx.icon !== undefined && ctx.icon !== '') out.push('--icon', ctx.icon);
        continue;
      }
    }
    // A word is dropped when a %f/%u in it has no argument, or when all it held were codes that
    // expand to nothing (%k without a file, deprecated codes). Otherwise it stays one word.
    let text = '';
    let drop = false;
    let empty = true;
    for (const part of parts) {
      if ('text' in part) {
        text += part.text;
        empty = false;
        continue;
      }
      switch (part.code) {
        case 'f':
        case 'u': {
          const first = ctx.args[0];
          if (first === undefined) drop = true;
          else text += first;
          empty = false;
          break;
        }
        case 'c':
          text += ctx.name;
          empty = false;
          break;
        case 'k':
          if (ctx.desktopFile !== undefined) {
            text += ctx.desktopFile;
            empty = false;
          }
          break;
        default:
          // Deprecated codes expand to nothing; %F %U %i cannot be here (validated).
          break;
      }
    }
    // A quoted "" word (no parts) is kept: it was written on purpose.
    if (drop || (empty && parts.length > 0)) continue;
    out.push(text);
  }
  if (execTakesFiles(tokens) === 'none') out.push(...ctx.args);
  return out;
}
