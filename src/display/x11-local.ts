// The person's own display, seen from `ebp run`: which X server DISPLAY names and how to reach
// it (Unix socket or TCP), and the real cookie that forwarded connections will present there.
// By default that cookie is a new untrusted one (X SECURITY extension, as `ssh -X` makes with
// `xauth generate ... untrusted`): the remote app can then neither read other windows nor the
// screen, nor inject input. Trusted forwarding uses the person's own cookie.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EbpError } from '../lib/errors.js';
import { decodeXauthority, MAX_COOKIE_BYTES, MIT_COOKIE } from './x11-auth.js';

/** Where an X server listens. */
export type DisplaySocket =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

export interface DisplayAddress {
  /** DISPLAY as given. */
  readonly text: string;
  readonly number: number;
  readonly screen: number;
  readonly socket: DisplaySocket;
}

/** What the person's side needs to forward X connections: serializable (the daemon path sends it). */
export interface LocalDisplay {
  readonly display: string;
  /** MIT-MAGIC-COOKIE-1, or '' when the display needs no cookie (trusted, none found). */
  readonly authName: string;
  /** The real cookie, hex. */
  readonly authData: string;
  readonly trusted: boolean;
}

export const X11_SOCKET_DIR = '/tmp/.X11-unix';
const X11_TCP_BASE = 6000;
/** Untrusted cookies expire this long after their last connection closes (OpenSSH's default 20 min). */
export const UNTRUSTED_TIMEOUT_S = 1200;
const XAUTH = '/usr/bin/xauth';
const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/;

/**
 * DISPLAY forms: ":N[.S]", "unix:N", "HOST/unix:N" (local socket), "HOST:N", "tcp/HOST:N" (TCP
 * port 6000+N). Anything else (DECnet "::", IPv6 literals, launchd paths) is refused.
 */
export function parseDisplay(text: string): DisplayAddress {
  const bad = (why: string): EbpError => new EbpError('DISPLAY_UNAVAILABLE', `DISPLAY "${text.slice(0, 80)}" ${why}`, {
    hint: 'use a display like :0 or localhost:10.0, or run without windows: ebp run --no-x11 ...',
  });
  const colon = text.lastIndexOf(':');
  if (colon === -1) throw bad('names no display number');
  const host = text.slice(0, colon);
  const match = /^(\d{1,5})(?:\.(\d{1,3}))?$/.exec(text.slice(colon + 1));
  if (match?.[1] === undefined) throw bad('has no valid display number');
  const number = Number(match[1]);
  const screen = Number(match[2] ?? 0);
  if (host.endsWith(':')) throw bad('is a DECnet or IPv6 address, which is not supported');
  if (X11_TCP_BASE + number > 65535) throw bad('has a display number that is too large');
  let socket: DisplaySocket;
  if (host === '' || host === 'unix' || host.endsWith('/unix') || host.startsWith('unix/')) {
    socket = { kind: 'unix', path: `${X11_SOCKET_DIR}/X${number}` };
  } else {
    const name = host.startsWith('tcp/') ? host.slice(4) : host;
    if (!HOST_NAME.test(name)) throw bad('names a host that is not a plain name or address');
    socket = { kind: 'tcp', host: name, port: X11_TCP_BASE + number };
  }
  return { text, number, screen, socket };
}

class XauthFailure extends Error {
  readonly errno: string | undefined;
  readonly stderr: string;

  constructor(error: Error & { readonly code?: string | number | null | undefined }, stderr: string) {
    super(error.message, { cause: error });
    this.errno = typeof error.code === 'string' ? error.code : undefined;
    this.stderr = stderr;
  }
}

function xauth(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(XAUTH, args, { env, timeout: 10_000, maxBuffer: 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) resolve({ stdout, stderr });
      else reject(new XauthFailure(error, stderr));
    });
  });
}

function xauthProblem(error: unknown, what: string): EbpError {
  const failure = error instanceof XauthFailure ? error : undefined;
  if (failure?.errno === 'ENOENT') {
    return new EbpError('DISPLAY_UNAVAILABLE', `cannot ${what}: xauth is not installed`, { hint: 'install it (sudo apt-get install xauth), or run without windows: ebp run --no-x11 ...' });
  }
  const stderr = (failure?.stderr ?? '').trim().split('\n').slice(-2).join('; ');
  return new EbpError('DISPLAY_UNAVAILABLE', `cannot ${what}: ${stderr === '' ? String(error) : stderr}`, {
    hint: 'check that DISPLAY and XAUTHORITY name your running X server, or run without windows: ebp run --no-x11 ...',
  });
}

/** One line of `xauth nlist`: family, then length/hex pairs for address, number, name, data. */
function parseNlistLine(line: string): { name: string; data: string } | undefined {
  const fields = line.trim().split(/\s+/);
  if (fields.length !== 9) return undefined;
  const name = Buffer.from(fields[6] ?? '', 'hex').toString('latin1');
  const data = (fields[8] ?? '').toLowerCase();
  return /^[0-9a-f]*$/.test(data) ? { name, data } : undefined;
}

/**
 * The cookie forwarded connections will present to the person's display. Untrusted (default):
 * a new cookie from the X server's SECURITY extension, made in a private temporary file and read
 * back. Trusted: the person's own cookie for DISPLAY (what Xlib would use).
 */
export async function prepareLocalDisplay(options: { display: string; trusted: boolean; env?: NodeJS.ProcessEnv }): Promise<LocalDisplay> {
  const address = parseDisplay(options.display);
  const env = options.env ?? process.env;
  if (options.trusted) {
    let stdout: string;
    try {
      ({ stdout } = await xauth(['nlist', address.text], env));
    } catch (error) {
      throw xauthProblem(error, `read the cookie of display ${address.text}`);
    }
    const entry = stdout.split('\n').map(parseNlistLine).find((found) => found?.name === MIT_COOKIE);
    return { display: address.text, authName: entry === undefined ? '' : MIT_COOKIE, authData: entry?.data ?? '', trusted: true };
  }
  const dir = await mkdtemp(join(tmpdir(), 'ebp-xauth-'));
  try {
    const file = join(dir, 'untrusted');
    await writeFile(file, '', { mode: 0o600 });
    try {
      await xauth(['-q', '-f', file, 'generate', address.text, MIT_COOKIE, 'untrusted', 'timeout', String(UNTRUSTED_TIMEOUT_S)], env);
    } catch (error) {
      throw xauthProblem(error, `make an untrusted cookie for display ${address.text} (does the X server have the SECURITY extension?)`);
    }
    const entry = decodeXauthority(await readFile(file)).find((found) => found.name === MIT_COOKIE);
    if (entry === undefined || entry.data.length === 0 || entry.data.length > MAX_COOKIE_BYTES) {
      throw new EbpError('DISPLAY_UNAVAILABLE', `xauth made no untrusted cookie for display ${address.text}`, {
        hint: 'run with --trusted-x11 (the app then gets full access to your display) or --no-x11',
      });
    }
    return { display: address.text, authName: MIT_COOKIE, authData: entry.data.toString('hex'), trusted: false };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Checks a LocalDisplay that came over the control socket (the daemon path): a boundary. */
export function validateLocalDisplay(value: unknown): LocalDisplay {
  const bad = (): EbpError => new EbpError('USAGE', 'the launch carries an invalid X11 display description');
  if (typeof value !== 'object' || value === null) throw bad();
  const record = value as Record<string, unknown>;
  const { display, authName, authData, trusted } = record;
  if (typeof display !== 'string' || typeof authName !== 'string' || typeof authData !== 'string' || typeof trusted !== 'boolean') throw bad();
  parseDisplay(display);
  if (authName !== '' && authName !== MIT_COOKIE) throw bad();
  if (!/^(?:[0-9a-f]{2}){0,64}$/.test(authData) || (authName === '') !== (authData === '')) throw bad();
  return { display, authName, authData, trusted };
}
