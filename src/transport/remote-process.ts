// A process running on a peer, seen from the person's side: streams, resize, signals, and how it
// ended. Backed by an SSH channel (direct) or by the local daemon's shared connection.
import type { Readable, Writable } from 'node:stream';
import type { ClientChannel } from 'ssh2';

export type RemoteExit =
  | { readonly kind: 'code'; readonly code: number; readonly message?: string }
  | { readonly kind: 'signal'; readonly signal: string }
  | { readonly kind: 'broken'; readonly message: string };

export interface RemoteProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  resize(cols: number, rows: number): void;
  signal(name: string): void;
  /** Ends the session from this side. */
  close(): void;
  /**
   * How it ended. It may settle while output is still to be read (a relayed launch's frames can
   * come in one read with the daemon's answer): wait for stdout's and stderr's 'end' as well
   * before taking the output as whole (cli/attach.ts does).
   */
  readonly exit: Promise<RemoteExit>;
  /**
   * Calls `listener` with how it ended the moment that is known, in the same turn (`exit`
   * settles a turn or more later). Where a process has it (a launch relayed by the local daemon).
   */
  readonly onExitKnown?: (listener: (exit: RemoteExit) => void) => void;
}

/** The parts of ssh2's client channel that signal() needs once our side has sent EOF. */
interface ChannelInternals {
  readonly outgoing?: { readonly id?: number; readonly state?: string };
  readonly _client?: { readonly _protocol?: { signal?: (id: number, name: string) => void } };
}

/**
 * RFC 4254 lets a client signal a session after it closed its input (`app < /dev/null`, then
 * Ctrl-C), but ssh2's public signal() refuses once the channel is no longer writable. We then
 * send the request through its protocol layer; if even that is unavailable, we end the session.
 */
function signalChannel(channel: ClientChannel, name: string): void {
  if (channel.writable) {
    channel.signal(name);
    return;
  }
  const internals = channel as unknown as ChannelInternals;
  const id = internals.outgoing?.id;
  const protocol = internals._client?._protocol;
  if (id !== undefined && (internals.outgoing?.state === 'open' || internals.outgoing?.state === 'eof') && typeof protocol?.signal === 'function') protocol.signal(id, name);
  else channel.close();
}

export function channelProcess(channel: ClientChannel, peer: string): RemoteProcess {
  const exit = new Promise<RemoteExit>((resolve) => {
    let result: RemoteExit | undefined;
    // The launch is over once its status came and both outputs reached their EOF: the channel's
    // close that follows only costs another message across (a launch's last few hundred µs).
    // Output nobody reads never reaches its EOF; then the close settles it.
    let outputsOpen = 2;
    const settle = (): void => {
      if (result !== undefined && outputsOpen === 0) resolve(result);
    };
    channel.on('exit', (code: number | null, signal?: string) => {
      result = typeof signal === 'string' && signal !== '' ? { kind: 'signal', signal } : { kind: 'code', code: code ?? 255 };
      settle();
    });
    for (const output of [channel, channel.stderr]) {
      output.once('end', () => {
        outputsOpen -= 1;
        settle();
      });
    }
    channel.on('close', () => {
      resolve(result ?? { kind: 'broken', message: `the connection to ${peer} broke before the app finished` });
    });
  });
  return {
    stdin: channel,
    stdout: channel,
    stderr: channel.stderr,
    resize(cols, rows) {
      channel.setWindow(rows, cols, 0, 0);
    },
    signal(name) {
      signalChannel(channel, name);
    },
    close() {
      channel.close();
    },
    exit,
  };
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { HUP: 1, INT: 2, QUIT: 3, ILL: 4, ABRT: 6, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15 };

/** The exit status a shell would give: the code, 128+N for a signal, 255 for a broken session. */
export function exitStatus(exit: RemoteExit): number {
  switch (exit.kind) {
    case 'code':
      return exit.code;
    case 'signal':
      return 128 + (SIGNAL_NUMBERS[exit.signal.replace(/^SIG/, '')] ?? 9);
    case 'broken':
      return 255;
    default:
      return assertNever(exit);
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected ${String(value)}`);
}
