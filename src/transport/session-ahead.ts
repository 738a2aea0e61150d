// A session channel opened ahead on a pooled connection, and requests sent on it without waiting.
//
// ssh2's Client.exec opens a session channel, waits for the peer to confirm it, sends the pty
// request and waits for its reply, then sends exec: two round trips before the command runs
// (three with a terminal). A launch through the daemon's pooled connection pays them all, and
// they are most of what a warm launch costs on the wire. Here the daemon keeps one session
// channel open ahead (the peer holds it idle, within its per-connection limit), and a launch sends
// its env, pty and exec requests on it back to back; their replies come in order (RFC 4254 5.4),
// so one round trip remains. Anything else (X11 forwarding, no channel ready, a channel that
// failed) goes through ssh2's own exec.
//
// ssh2 (1.17) has no API for either step; this uses its channel table (`_chanMgr`), its protocol
// writer (`_protocol`) and a channel's reply queue (`_callbacks`), as its own exec does. Their
// shape is checked first: without it, everything goes through ssh2's exec as before.
import type { Client, ClientChannel, PseudoTtyOptions } from 'ssh2';
import { connectionSocket, corked } from './corked.js';

/** What opening a channel asks for: ssh2's own values (lib/Channel.js MAX_WINDOW, PACKET_SIZE). */
const WINDOW = 2 * 1024 * 1024;
const PACKET = 32 * 1024;

type OpenCallback = ((error: Error | undefined, channel?: ClientChannel) => void) & { type?: string };

interface ClientInternals {
  _chanMgr: { add(callback: OpenCallback): number };
  _protocol: {
    session(local: number, window: number, packet: number): void;
    env(remote: number, key: string, value: string, wantReply: boolean): void;
    pty(remote: number, rows: number, cols: number, height: number, width: number, term: string, modes: null, wantReply: boolean): void;
    exec(remote: number, command: string, wantReply: boolean): void;
  };
}

interface ChannelInternals {
  _callbacks: ((failed: boolean | Error) => void)[];
  outgoing: { id: number; state: string };
  subtype?: string;
  allowHalfOpen: boolean;
}

function clientInternals(client: Client): ClientInternals | undefined {
  const inner = client as unknown as Partial<ClientInternals>;
  const protocol = inner._protocol;
  if (typeof inner._chanMgr?.add !== 'function' || protocol === undefined) return undefined;
  const methods = protocol as unknown as Record<string, unknown>;
  if (['session', 'env', 'pty', 'exec'].some((name) => typeof methods[name] !== 'function')) return undefined;
  return inner as ClientInternals;
}

function channelInternals(channel: ClientChannel): ChannelInternals | undefined {
  const inner = channel as unknown as Partial<ChannelInternals>;
  if (!Array.isArray(inner._callbacks) || typeof inner.outgoing?.id !== 'number' || typeof inner.outgoing.state !== 'string') return undefined;
  return inner as ChannelInternals;
}

/** Whether this ssh2 has the internals used here. */
export function sessionsAheadWork(client: Client): boolean {
  return clientInternals(client) !== undefined;
}

/**
 * Opens a session channel and resolves with it once the peer confirmed it; undefined when it
 * cannot (no such internals, no free channel, the peer refused or the connection closed).
 */
export function openSessionAhead(client: Client): Promise<ClientChannel | undefined> {
  const inner = clientInternals(client);
  if (inner === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const opened: OpenCallback = (error, channel) => {
      resolve(error === undefined && channel !== undefined && channelInternals(channel) !== undefined ? channel : undefined);
    };
    // ssh2's confirmation handler makes a session Channel for a callback of this type.
    opened.type = 'session';
    const local = inner._chanMgr.add(opened);
    if (local === -1) {
      resolve(undefined);
      return;
    }
    inner._protocol.session(local, WINDOW, PACKET);
  });
}

export interface AheadRequest {
  readonly command: string;
  readonly env: Readonly<Record<string, string>>;
  readonly pty?: PseudoTtyOptions;
  /** Send the channel's EOF right after the exec: the app's input is empty. */
  readonly inputEnded?: boolean;
}

/**
 * Sends env, pty (when asked) and exec on a channel opened ahead, without waiting between them.
 * `done` gets the channel once exec is accepted, or the first refusal (the channel is closed
 * then). False when the channel can no longer take requests (nothing was sent).
 */
export function execAhead(client: Client, channel: ClientChannel, request: AheadRequest, done: (error: Error | undefined, channel: ClientChannel) => void): boolean {
  const inner = clientInternals(client);
  const chan = channelInternals(channel);
  if (inner === undefined || chan === undefined || chan.outgoing.state !== 'open') return false;
  const remote = chan.outgoing.id;
  let refused = false;
  const refuse = (failed: boolean | Error, what: string): void => {
    if (refused) return;
    refused = true;
    channel.close();
    done(failed instanceof Error ? failed : new Error(what), channel);
  };
  // The environment, the terminal, the exec (and the input's EOF): one write.
  corked(connectionSocket(client), () => {
    for (const [key, value] of Object.entries(request.env)) inner._protocol.env(remote, key, value, false);
    if (request.pty !== undefined) {
      const { rows = 24, cols = 80, height = 480, width = 640, term = 'vt100' } = request.pty;
      chan._callbacks.push((failed) => {
        if (failed !== false) refuse(failed, 'Unable to request a pseudo-terminal');
      });
      inner._protocol.pty(remote, rows, cols, height, width, term, null, true);
    }
    chan._callbacks.push((failed) => {
      if (refused) return;
      if (failed !== false) {
        refuse(failed, 'Unable to exec');
        return;
      }
      chan.subtype = 'exec';
      chan.allowHalfOpen = true;
      done(undefined, channel);
    });
    inner._protocol.exec(remote, request.command, true);
    // ssh2's own end() later (the empty input piped in) finds the EOF sent and sends nothing.
    if (request.inputEnded === true) channel.eof();
  });
  return true;
}
