// X11 forwarding on the host: a sandbox whose client asked for X11 gets a display of its own. The
// daemon listens on a Unix socket in a per-launch folder and writes an Xauthority holding the
// client's fake cookie; the sandbox sees that socket as /tmp/.X11-unix/X0 and nothing else of X.
// Every connection to it becomes an SSH x11 channel back to the client, which checks the cookie
// and talks to the person's real display. The host never holds a real cookie.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { EbpError } from '../lib/errors.js';
import type { X11Mount } from '../sandbox/policy.js';
import type { HostIdentity } from '../sandbox/privilege.js';
import { unreachableFolder } from '../sandbox/request.js';
import { MIT_COOKIE, parseHexCookie, sandboxXauthority } from './x11-auth.js';
import { pipeHandingOff } from '../lib/handoff.js';

/** What a client asked for in its x11-req, validated. */
export interface X11Request {
  readonly cookie: Buffer;
  readonly screen: number;
  readonly single: boolean;
}

/** A launch's X11 forwarding: the request and how to open an x11 channel back to the client. */
export interface X11Forwarding {
  readonly request: X11Request;
  openChannel(): Promise<Duplex>;
}

export interface SandboxDisplay {
  readonly mount: X11Mount;
  /** Stops listening, closes every X connection, removes the folder. Idempotent. */
  close(): void;
}

const MAX_SCREEN = 255;
/** More simultaneous X connections than any app needs is an attack on the client's display. */
const MAX_CONNECTIONS = 64;
/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;
const SOCKET_NAME = 'X0';

/** Validates ssh2's x11-req data (hostile: straight from the client). */
export function parseX11Request(info: { single: boolean; protocol: string; cookie: string | Buffer; screen: number }): X11Request {
  if (info.protocol !== MIT_COOKIE) {
    throw new EbpError('USAGE', `X11 authorization "${info.protocol.slice(0, 32)}" is not supported`, { hint: `only ${MIT_COOKIE} is` });
  }
  // ssh2 hands the cookie over as the raw bytes of its hex text, whatever its typings say.
  const text = typeof info.cookie === 'string' ? info.cookie : Buffer.isBuffer(info.cookie) ? info.cookie.toString('latin1') : '';
  const screen = info.screen;
  if (!Number.isInteger(screen) || screen < 0 || screen > MAX_SCREEN) throw new EbpError('USAGE', `X11 screen ${String(screen)} is out of range`);
  return { cookie: parseHexCookie(text), screen, single: info.single };
}

const swept = new Set<string>();

/** Folders left by a daemon that was killed: no sandbox of this process can be using them. */
function sweepOnce(baseDir: string): void {
  if (swept.has(baseDir)) return;
  swept.add(baseDir);
  for (const name of readdirSync(baseDir)) rmSync(join(baseDir, name), { recursive: true, force: true });
}

/**
 * Makes the launch's display folder: `<base>/<random>/` holding `sock/X0` (the listening socket)
 * and `Xauthority` (the fake cookie for display 0). As root the folder and its files belong to the
 * sandbox user (0700/0600): bwrap, running as that user, must reach them to bind them.
 * Threat: one sandbox reaching another's display. Every sandbox runs as the same host user, but
 * none sees the host's state folder: only its own folder is bound into it, read-only.
 */
export async function openSandboxDisplay(forwarding: X11Forwarding, options: { baseDir: string; identity: HostIdentity; log?: (event: string, fields?: Record<string, unknown>) => void }): Promise<SandboxDisplay> {
  const { baseDir, identity } = options;
  const log = options.log ?? (() => undefined);
  mkdirSync(baseDir, { recursive: true, mode: 0o711 });
  chmodSync(baseDir, 0o711);
  sweepOnce(baseDir);
  if (identity.switchUser) {
    const blocked = unreachableFolder(baseDir, identity.uid);
    if (blocked !== undefined) {
      throw new EbpError('SANDBOX_SETUP_FAILED', `sandboxes run as ${identity.name} (uid ${identity.uid}), which cannot enter ${blocked} to reach their X11 display`, {
        hint: `let it pass: chmod o+x ${blocked}`,
      });
    }
  }
  const dir = join(baseDir, randomBytes(8).toString('hex'));
  const socketDir = join(dir, 'sock');
  const socketPath = join(socketDir, SOCKET_NAME);
  const authFile = join(dir, 'Xauthority');
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new EbpError('SANDBOX_SETUP_FAILED', `the X11 socket path ${socketPath} is longer than Unix sockets allow`, { hint: 'use a shorter --state-dir' });
  }
  mkdirSync(dir, { mode: 0o700 });
  const streams = new Set<Duplex>();
  let server: Server | undefined;
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    server?.close();
    for (const stream of streams) stream.destroy();
    streams.clear();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    mkdirSync(socketDir, { mode: 0o700 });
    writeFileSync(authFile, sandboxXauthority(0, forwarding.request.cookie), { mode: 0o600, flag: 'wx' });
    let accepted = 0;
    const listening = createServer({ pauseOnConnect: true }, (socket: Socket) => {
      socket.on('error', () => undefined);
      accepted += 1;
      if (closed || streams.size >= MAX_CONNECTIONS * 2 || (forwarding.request.single && accepted > 1)) {
        socket.destroy();
        return;
      }
      streams.add(socket);
      socket.once('close', () => streams.delete(socket));
      forwarding.openChannel().then((channel) => {
        if (socket.destroyed || closed) {
          channel.destroy();
          return;
        }
        streams.add(channel);
        channel.on('error', () => undefined);
        channel.once('close', () => {
          streams.delete(channel);
          socket.destroy();
        });
        socket.once('close', () => channel.destroy());
        // X11 is request and reply: each small message hands the CPU to its reader.
        pipeHandingOff(socket, channel);
        pipeHandingOff(channel, socket);
        socket.resume();
      }, (error: unknown) => {
        log('x11-channel-refused', { error: error instanceof Error ? error.message : String(error) });
        socket.destroy();
      });
    });
    server = listening;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(socketPath, () => {
        listening.off('error', reject);
        resolve();
      });
    });
    chmodSync(socketPath, 0o600);
    if (identity.switchUser) {
      for (const path of [dir, socketDir, socketPath, authFile]) chownSync(path, identity.uid, identity.gid);
    }
    // The folder must be exactly what we made: a directory, not something swapped in.
    if (!lstatSync(dir).isDirectory()) throw new EbpError('SANDBOX_SETUP_FAILED', `${dir} is not the folder ebp made`);
  } catch (error) {
    close();
    throw error instanceof EbpError ? error : new EbpError('SANDBOX_SETUP_FAILED', `cannot set up the X11 display: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return { mount: { socketDir, authFile, screen: forwarding.request.screen }, close };
}
