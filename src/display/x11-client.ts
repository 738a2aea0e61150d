// X11 forwarding on the person's side: the peer opens an SSH "x11" channel for every X connection
// an app makes in its sandbox. Each channel must begin with an X connection setup carrying the
// fake cookie this side gave that launch; the cookie names the launch (one SSH connection carries
// many), the real cookie replaces it, and the rest is relayed to the person's display unchanged.
// ssh2's client does none of this: a channel that fails the check is closed unread.
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { MIT_COOKIE, randomCookie } from './x11-auth.js';
import { parseDisplay, type DisplayAddress, type DisplaySocket, type LocalDisplay } from './x11-local.js';
import { cookieMatches, encodeConnectionSetup, parseConnectionSetup, ServerMessageFramer } from './x11-setup.js';
import { handOff, pipeHandingOff } from '../lib/handoff.js';

/** A channel must present its setup this fast; a silent one only holds resources. */
const SETUP_TIMEOUT_MS = 10_000;
/** Per launch: more simultaneous X connections than any app needs is an attack. */
const MAX_CONNECTIONS_PER_LAUNCH = 64;

export interface X11Registration {
  /** The fake cookie to send in the x11-req (hex): only it opens this launch's display. */
  readonly fakeCookie: string;
  readonly screen: number;
  /** Ends forwarding for this launch: every open X connection of it is closed. */
  close(): void;
}

interface Launch {
  /** Called when an X connection of the launch reaches the display (its app is running). */
  readonly onConnected: (() => void) | undefined;
  readonly fake: Buffer;
  readonly local: LocalDisplay;
  readonly address: DisplayAddress;
  readonly realData: Buffer;
  readonly streams: Set<Duplex>;
}

function connectSocket(socket: DisplaySocket): Promise<Socket> {
  const attempt = (options: { path: string } | { host: string; port: number }): Promise<Socket> => new Promise((resolve, reject) => {
    const conn = connect(options);
    conn.once('connect', () => {
      conn.removeAllListeners('error');
      resolve(conn);
    });
    conn.once('error', reject);
  });
  if (socket.kind === 'tcp') return attempt({ host: socket.host, port: socket.port }).then((conn) => {
    conn.setNoDelay(true);
    return conn;
  });
  // Xlib on Linux tries the abstract socket first, then the path; the path is the common case
  // here (the abstract one is absent in containers and other network namespaces).
  return attempt({ path: socket.path }).catch(() => attempt({ path: `\0${socket.path}` }));
}

export class X11Forwarder {
  readonly #launches = new Set<Launch>();
  readonly #log: (event: string, fields?: Record<string, unknown>) => void;

  constructor(options: { log?: (event: string, fields?: Record<string, unknown>) => void } = {}) {
    this.#log = options.log ?? (() => undefined);
  }

  get active(): number {
    return this.#launches.size;
  }

  /** `onConnected` hears of each of the launch's X connections once it reaches the display. */
  register(local: LocalDisplay, onConnected?: () => void): X11Registration {
    const address = parseDisplay(local.display);
    const launch: Launch = { onConnected, fake: randomCookie(16), local, address, realData: Buffer.from(local.authData, 'hex'), streams: new Set() };
    this.#launches.add(launch);
    let closed = false;
    return {
      fakeCookie: launch.fake.toString('hex'),
      screen: address.screen,
      close: () => {
        if (closed) return;
        closed = true;
        this.#launches.delete(launch);
        for (const stream of launch.streams) stream.destroy();
        launch.streams.clear();
      },
    };
  }

  /** Takes an accepted x11 channel: checks its setup, then relays it to the launch's display. */
  accept(channel: Duplex): void {
    channel.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => {
      this.#log('x11-refused', { reason: 'no connection setup in time' });
      channel.destroy();
    }, SETUP_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const parsed = parseConnectionSetup(buffered);
      if (parsed.kind === 'incomplete') return;
      clearTimeout(timer);
      channel.off('data', onData);
      channel.pause();
      if (parsed.kind === 'invalid') {
        this.#log('x11-refused', { reason: parsed.reason });
        channel.destroy();
        return;
      }
      const { setup } = parsed;
      const launch = setup.authName === MIT_COOKIE ? [...this.#launches].find((candidate) => cookieMatches(setup.authData, candidate.fake)) : undefined;
      if (launch === undefined) {
        this.#log('x11-refused', { reason: setup.authName === MIT_COOKIE ? 'wrong cookie' : `authorization "${setup.authName.slice(0, 32)}"` });
        channel.destroy();
        return;
      }
      if (launch.streams.size >= MAX_CONNECTIONS_PER_LAUNCH * 2) {
        this.#log('x11-refused', { reason: 'too many X connections' });
        channel.destroy();
        return;
      }
      const rest = buffered.subarray(setup.length);
      launch.streams.add(channel);
      channel.once('close', () => launch.streams.delete(channel));
      connectSocket(launch.address.socket).then((display) => {
        if (channel.destroyed || !launch.streams.has(channel) || !this.#launches.has(launch)) {
          display.destroy();
          return;
        }
        launch.streams.add(display);
        display.on('error', () => undefined);
        display.once('close', () => {
          launch.streams.delete(display);
          channel.destroy();
        });
        channel.once('close', () => display.destroy());
        // The real cookie goes only to the person's own X server, never back over the network.
        display.write(encodeConnectionSetup(setup, launch.local.authName, launch.realData));
        if (rest.length > 0) display.write(rest);
        pipeHandingOff(channel, display);
        // The server's messages go on whole (see ServerMessageFramer), with pipe()'s backpressure.
        const framer = new ServerMessageFramer(setup.byteOrder);
        display.on('data', (chunk: Buffer) => {
          const ready = framer.push(chunk);
          if (ready.length === 0) return;
          if (!channel.write(ready)) {
            display.pause();
            channel.once('drain', () => display.resume());
          }
          handOff(ready.length);
        });
        display.once('end', () => {
          const rest = framer.flush();
          if (rest.length > 0) channel.write(rest);
          channel.end();
        });
        channel.resume();
        launch.onConnected?.();
      }, (error: unknown) => {
        this.#log('x11-display-unreachable', { display: launch.local.display, error: error instanceof Error ? error.message : String(error) });
        channel.destroy();
      });
    };
    channel.on('data', onData);
  }

  /** Closes every launch's connections. */
  close(): void {
    for (const launch of this.#launches) for (const stream of launch.streams) stream.destroy();
    this.#launches.clear();
  }
}
