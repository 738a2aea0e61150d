// The client side of the SSH transport: one authenticated connection to a peer (its host key
// checked against what we know of it), on which launches open session channels.
import { connect as netConnect } from 'node:net';
import ssh2, { type ClientChannel, type PseudoTtyOptions } from 'ssh2';
import { channelProcess, type RemoteProcess } from './remote-process.js';
import { execAhead, openSessionAhead, sessionsAheadWork } from './session-ahead.js';
import { MIT_COOKIE } from '../display/x11-auth.js';
import { X11Forwarder } from '../display/x11-client.js';
import type { LocalDisplay } from '../display/x11-local.js';
import { EbpError } from '../lib/errors.js';
import { QUIET_AFTER_LAUNCH_MS } from '../lib/quiet.js';
import type { Identity } from '../peer/identity.js';
import { hostKeyChanged, type KnownHosts } from '../peer/known-hosts.js';
import { fingerprintOf } from '../peer/keys.js';

const { Client } = ssh2;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export function endpointText(endpoint: Endpoint): string {
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/** "host:port", "[v6]:port" or "host" (default port). */
export function parseEndpoint(text: string, defaultPort: number): Endpoint {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(text);
  const plain = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(text);
  const match = bracketed ?? plain;
  const port = Number(match?.[2] ?? defaultPort);
  if (match?.[1] === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new EbpError('USAGE', `"${text}" is not HOST:PORT`, { hint: 'e.g. 198.18.0.2:20101 or [fd00::2]:20101; peer names and fingerprints need the local daemon (`ebp up`), which knows the pool' });
  }
  return { host: match[1], port };
}

export interface ExecOptions {
  readonly pty?: { readonly term: string; readonly cols: number; readonly rows: number };
  readonly env?: Readonly<Record<string, string>>;
  /** Forward the app's X11 connections to this display (src/display/x11-client.ts). */
  readonly x11?: LocalDisplay;
  /** Called as each of the app's X11 connections reaches the display. */
  readonly onX11Connection?: () => void;
  /**
   * The app's input is known to be empty (the caller's stdin is /dev/null): on a session opened
   * ahead its EOF goes out with the request, in the same write, not a message of its own once
   * the launch runs. (Otherwise it goes when the input is ended, as ever.)
   */
  readonly inputEnded?: boolean;
}

export interface PeerConnection {
  readonly endpoint: Endpoint;
  readonly fingerprint: string;
  /** Opens a session running `command`; its exit is watched from the first moment. */
  exec(command: string, options?: ExecOptions): Promise<RemoteProcess>;
  /** Runs a query (ebp:apps ...) and returns its stdout. */
  query(command: string): Promise<string>;
  readonly closed: Promise<Error | undefined>;
  close(): void;
}

export interface ConnectOptions {
  readonly identity: Identity;
  readonly knownHosts: KnownHosts;
  /** The display name we present (a claim; the key is the identity). */
  readonly username: string;
  /** The fingerprint a peer announced; a different host key is an impostor. */
  readonly expectedFingerprint?: string;
  readonly timeoutMs?: number;
  /** Keep a session channel open ahead for the next launch (the daemon's pooled connections). */
  readonly sessionsAhead?: boolean;
}

const KEEPALIVE_MS = 5000;
const KEEPALIVE_MAX = 3;

/** A session channel opened ahead: being opened, and the channel once the peer confirmed it. */
interface SessionAhead {
  readonly opening: Promise<ClientChannel | undefined>;
  open?: ClientChannel;
}

export async function connectPeer(endpoint: Endpoint, options: ConnectOptions): Promise<PeerConnection> {
  const text = endpointText(endpoint);
  const client = new Client();
  let fingerprint = '';
  let keyProblem: EbpError | undefined;
  const state = { isNew: false };
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => { resolve(); });
    client.once('error', (error: Error & { level?: string; code?: string }) => {
      if (keyProblem !== undefined) reject(keyProblem);
      else if (error.level === 'client-authentication') reject(new EbpError('PEER_UNREACHABLE', `${text} did not accept our key`, { cause: error }));
      else reject(new EbpError('PEER_UNREACHABLE', `cannot reach ${text}: ${error.code === 'ECONNREFUSED' ? 'connection refused (is `ebp up` running there?)' : error.message}`, { cause: error }));
    });
    // Our own socket with Nagle's algorithm off: the handshake and interactive traffic are small
    // packets that must not wait for delayed ACKs.
    const sock = netConnect({ host: endpoint.host, port: endpoint.port, noDelay: true });
    client.connect({
      sock,
      host: endpoint.host,
      port: endpoint.port,
      username: options.username,
      privateKey: options.identity.privateKey,
      readyTimeout: options.timeoutMs ?? 10_000,
      keepaliveInterval: KEEPALIVE_MS,
      keepaliveCountMax: KEEPALIVE_MAX,
      // Threat: a machine that answers on a peer's address with another key (an impostor, or a
      // reinstall). Unknown peers are learned on first contact; a changed key is refused.
      hostVerifier: (key: Buffer) => {
        fingerprint = fingerprintOf(key);
        if (options.expectedFingerprint !== undefined && options.expectedFingerprint !== fingerprint) {
          keyProblem = new EbpError('HOST_KEY_CHANGED', `${text} answered with key ${fingerprint}, but the peer announced ${options.expectedFingerprint}: not the machine it claims to be`, {
            hint: 'do not use this peer; if the owner really changed keys, wait for its new announcement',
          });
          return false;
        }
        const known = options.knownHosts.check(text, fingerprint);
        if (known.status === 'changed') {
          keyProblem = hostKeyChanged(text, known.expected, fingerprint);
          return false;
        }
        state.isNew = known.status === 'new';
        return true;
      },
    });
  });
  if (state.isNew) await options.knownHosts.remember(text, fingerprint);
  const closed = new Promise<Error | undefined>((resolve) => {
    let lastError: Error | undefined;
    client.on('error', (error) => {
      lastError = error;
    });
    client.once('close', () => { resolve(lastError); });
  });
  // X11 channels of every launch on this connection arrive here; the fake cookie in each
  // connection's setup tells which launch (and so which display) it belongs to.
  let x11: X11Forwarder | undefined;
  const forwarder = (): X11Forwarder => {
    if (x11 === undefined) {
      const made = new X11Forwarder();
      client.on('x11', (_info, accept) => { made.accept(accept()); });
      void closed.then(() => { made.close(); });
      x11 = made;
    }
    return x11;
  };
  // One session channel held open ahead for the next launch, opened again as each launch's channel
  // closes: a launch then sends its requests at once (session-ahead.ts), one round trip fewer.
  // `open`: the channel, once the peer confirmed it; a launch then sends its requests in the very
  // turn it is asked for, before its caller goes on to other work.
  let ahead: SessionAhead | undefined;
  const openAhead = (): void => {
    if (options.sessionsAhead !== true || ahead !== undefined || !sessionsAheadWork(client)) return;
    const held: SessionAhead = { opening: openSessionAhead(client) };
    ahead = held;
    void held.opening.then((channel) => {
      const forget = (): void => {
        if (ahead === held) ahead = undefined;
      };
      if (channel === undefined) {
        forget();
        return;
      }
      held.open = channel;
      channel.once('close', forget);
    });
  };
  openAhead();
  void closed.then(() => { ahead = undefined; });
  const exec = (command: string, execOptions: ExecOptions = {}): Promise<RemoteProcess> => {
    // A channel still being opened is awaited: that costs no more than opening one now.
    const taken = execOptions.x11 === undefined ? ahead : undefined;
    if (taken !== undefined) ahead = undefined;
    if (taken === undefined || taken.open !== undefined) return send(command, execOptions, taken?.open);
    return taken.opening.then((channel) => send(command, execOptions, channel));
  };
  const send = (command: string, execOptions: ExecOptions, taken: ClientChannel | undefined): Promise<RemoteProcess> => {
    return new Promise((resolve, reject) => {
      const pty: PseudoTtyOptions | undefined = execOptions.pty === undefined ? undefined : { term: execOptions.pty.term, cols: execOptions.pty.cols, rows: execOptions.pty.rows };
      const display = execOptions.x11 === undefined ? undefined : forwarder().register(execOptions.x11, execOptions.onX11Connection);
      const callback = (error: Error | undefined, channel: ClientChannel): void => {
        // The exit status can arrive in the same read as the reply to the exec request: watch
        // for it here, before any await, or a quick refusal would look like a broken session.
        if (error !== undefined) {
          openAhead();
          display?.close();
          reject(display !== undefined && /X11/.test(error.message)
            ? new EbpError('DISPLAY_UNAVAILABLE', `${text} refused X11 forwarding`, { cause: error, hint: 'run without windows: ebp run --no-x11 ...' })
            : new EbpError('SESSION_BROKEN', `${text} refused the session: ${error.message}`, { cause: error }));
          return;
        }
        // Not at once: what the launch's end sets off here (daemon B's exit frame to the CLI)
        // goes out first, and the CLI exits before the peer is asked for the next channel.
        channel.once('close', () => { setTimeout(openAhead, QUIET_AFTER_LAUNCH_MS).unref(); });
        // The launch is over: its windows go with it, even if the peer never closes them.
        if (display !== undefined) channel.once('close', () => { display.close(); });
        resolve(channelProcess(channel, text));
      };
      const env = execOptions.env ?? {};
      if (taken !== undefined && execAhead(client, taken, { command, env, ...(pty === undefined ? {} : { pty }), ...(execOptions.inputEnded === true ? { inputEnded: true } : {}) }, callback)) return;
      taken?.close();
      const x11Options = display === undefined ? {} : { x11: { single: false, protocol: MIT_COOKIE, cookie: display.fakeCookie, screen: display.screen } };
      if (pty === undefined) client.exec(command, { env, ...x11Options }, callback);
      else client.exec(command, { env, pty, ...x11Options }, callback);
    });
  };
  return {
    endpoint,
    fingerprint,
    exec,
    closed,
    async query(command) {
      const remote = await exec(command);
      const chunks: Buffer[] = [];
      const errors: Buffer[] = [];
      remote.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
      remote.stderr.on('data', (chunk: Buffer) => errors.push(chunk));
      remote.stdin.end();
      const exit = await remote.exit;
      const code = exit.kind === 'code' ? exit.code : undefined;
      if (code !== 0) throw new EbpError('SESSION_BROKEN', `${text}: ${Buffer.concat(errors).toString().trim() || `query failed with status ${String(code)}`}`);
      return Buffer.concat(chunks).toString();
    },
    close() {
      client.end();
    },
  };
}
