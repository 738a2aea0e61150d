// What `ebp run` asks the local daemon for, and the facts about this process it is made of (its
// terminal, its locale, which arguments are local files). Kept apart from the command and the
// attach code, and light: the early launch (early-run.ts) runs it before the CLI is loaded.
//
// process.stdin and process.stdout are streams Node makes on first use, a millisecond or more
// (stdin from a file or /dev/null loads the whole of fs's streams): when the local daemon took
// the descriptors, a launch never touches them. isTerminal() asks the descriptor instead.
import { fstatSync, statSync } from 'node:fs';
import type { LocalDisplay } from '../display/x11-local.js';
import { isDevNull } from '../lib/descriptors.js';

export interface LaunchSpec {
  readonly peer: string;
  readonly command: readonly string[];
  readonly pty?: { readonly term: string; readonly cols: number; readonly rows: number };
  readonly env: Readonly<Record<string, string>>;
  /** HOST:PORT to use when PEER (then a full fingerprint) is not in the pool; the key is enforced. */
  readonly address?: string;
  /** Forward X11 to this display; the daemon path hands it to the daemon, which relays it. */
  readonly x11?: LocalDisplay;
}

/**
 * isatty(FD), with node:tty (two thirds of a millisecond to load) loaded only for a character
 * device other than /dev/null: a script's pipes, files and /dev/null are told apart by fstat.
 */
export function isTerminal(fd: number): boolean {
  try {
    const stats = fstatSync(fd);
    if (!stats.isCharacterDevice() || isDevNull(stats)) return false;
  } catch {
    return false;
  }
  return process.getBuiltinModule('node:tty').isatty(fd);
}

export function localTerminal(): { term: string; cols: number; rows: number } | undefined {
  if (!isTerminal(0) || !isTerminal(1)) return undefined;
  return { term: process.env['TERM'] ?? 'xterm-256color', cols: process.stdout.columns, rows: process.stdout.rows };
}

/** Signals sent to `ebp run` without a terminal of its own that go on to the app. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** The locale the app gets: LANG and LC_* (the host takes nothing else from the client). */
export function localeEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && (key === 'LANG' || /^LC_[A-Z]+$/.test(key))) out[key] = value;
  }
  return out;
}

/** Whether an app argument names a local file (forwarded: the launch then carries files). */
export function isLocalFile(arg: string): boolean {
  if (arg === '' || arg.startsWith('-')) return false;
  try {
    // No such file is the usual answer: without the exception Node would make for it.
    return statSync(arg, { throwIfNoEntry: false })?.isFile() === true;
  } catch {
    return false;
  }
}

/**
 * The control request for a launch through the daemon, one line. The daemon opens this
 * process's stdin/stdout/stderr itself where it can (its answer says which): their bytes then
 * skip this process.
 */
export function runRequestLine(spec: LaunchSpec): string {
  return `${JSON.stringify({ op: 'run', params: { ...spec, callerStdio: true } })}\n`;
}

/** A launch that needs nothing but the daemon: its state dir (as given) and what it asks for. */
export interface PlainRun {
  readonly stateDir: string | undefined;
  readonly spec: LaunchSpec;
}

/**
 * `ebp [--state-dir DIR] run PEER APP [ARGS...]` with no option of `run`, no display to forward
 * (DISPLAY unset or empty) and no argument that is a local file: a launch whose request is
 * known from the command line and this process alone. Anything else is undefined: the run
 * command then does all of it (options, X11 cookie, files).
 *
 * After PEER every word is the app's (the run command parses with stopAtOperand), so only the
 * words before it decide.
 */
export function plainRun(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): PlainRun | undefined {
  let stateDir: string | undefined;
  let index = 0;
  for (; argv[index] === '--state-dir'; index += 2) {
    stateDir = argv[index + 1];
    if (stateDir === undefined) return undefined;
  }
  if (argv[index] !== 'run') return undefined;
  const [peer, app, ...rest] = argv.slice(index + 1);
  if (peer === undefined || app === undefined || peer.startsWith('-')) return undefined;
  const display = env['DISPLAY'];
  if (display !== undefined && display !== '') return undefined;
  if (rest.some(isLocalFile)) return undefined;
  const pty = localTerminal();
  return { stateDir, spec: { peer, command: [app, ...rest], env: localeEnv(env), ...(pty === undefined ? {} : { pty }) } };
}
