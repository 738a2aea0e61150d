// Shell-word splitting and quoting for the SSH exec request: "APP ARG ARG". The words are data:
// no expansion of any kind ($, `, *, ~), and nothing is ever handed to a shell.
import { EbpError } from '../lib/errors.js';

const MAX_COMMAND = 256 * 1024;
const MAX_WORDS = 4096;

/** POSIX-shell-like splitting: whitespace separates; '...' literal; "..." with \ escapes; \x. */
export function splitShellWords(text: string): string[] {
  if (text.length > MAX_COMMAND) throw new EbpError('USAGE', `command too long (${text.length} bytes; at most ${MAX_COMMAND})`);
  if (text.includes('\0')) throw new EbpError('USAGE', 'command contains a NUL byte');
  const words: string[] = [];
  let current = '';
  let inWord = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i] ?? '';
    if (ch === ' ' || ch === '\t' || ch === '\n') {
      if (inWord) {
        words.push(current);
        current = '';
        inWord = false;
      }
      continue;
    }
    inWord = true;
    if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) throw new EbpError('USAGE', 'unterminated single quote in command');
      current += text.slice(i + 1, end);
      i = end;
    } else if (ch === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j += 1) {
        const c = text[j] ?? '';
        if (c === '\\' && j + 1 < text.length && '"\\$`\n'.includes(text[j + 1] ?? '')) {
          j += 1;
          if (text[j] !== '\n') current += text[j] ?? '';
        } else {
          current += c;
        }
      }
      if (j >= text.length) throw new EbpError('USAGE', 'unterminated double quote in command');
      i = j;
    } else if (ch === '\\') {
      if (i + 1 < text.length) {
        i += 1;
        if (text[i] !== '\n') current += text[i] ?? '';
      }
    } else {
      current += ch;
    }
    if (words.length >= MAX_WORDS) throw new EbpError('USAGE', `too many arguments (at most ${MAX_WORDS})`);
  }
  if (inWord) words.push(current);
  return words;
}

/** Quote one word so that splitShellWords (and a POSIX shell) gives it back unchanged. */
export function quoteShellWord(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_./:=@%+,-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export function joinShellWords(words: readonly string[]): string {
  return words.map(quoteShellWord).join(' ');
}
