// How the CLI reaches a peer: through the local daemon's shared connection when it runs (no
// handshake), otherwise directly with this machine's identity.
import type { Socket } from 'node:net';
import type { StatePaths } from '../config/paths.js';
import { callDaemon, connectControl, controlSocketPath, readAnswer, throwIfError } from '../control/client.js';
import type { StdioTaken } from '../control/caller-stdio.js';
import { framedProcess } from '../control/frames.js';
import { launchDirect, queryDirect } from './dial.js';
import type { LocalDisplay } from '../display/x11-local.js';
import { EbpError } from '../lib/errors.js';
import type { RemoteProcess } from '../transport/remote-process.js';
import { runRequestLine, type LaunchSpec } from './run-request.js';

export const DEFAULT_PEER_PORT = 20101;

export interface PeerLaunch {
  readonly remote: RemoteProcess;
  /** Release the connection once the launch is over (direct launches only). */
  readonly done: () => void;
  /** This process's descriptors the daemon reads and writes itself: leave them alone. */
  readonly taken?: StdioTaken;
}

/**
 * Starts the launch. `display` is the X11 display being prepared (its cookie made) while the
 * daemon's socket or the peer's connection is opened; it is awaited just before the request.
 * `sent`: the daemon's connection with this launch's request on it already (cli/early-run.ts).
 */
export async function launchOnPeer(paths: StatePaths, spec: LaunchSpec, display?: Promise<LocalDisplay | undefined>, sent?: Socket): Promise<PeerLaunch> {
  // A failed connection is the error to report; the display's own failure then goes unheard.
  display?.catch(() => undefined);
  const request = (x11?: LocalDisplay): string => runRequestLine(x11 === undefined ? spec : { ...spec, x11 });
  // Without a display to wait for, the request goes out with the connection.
  const socket = sent ?? await connectControl(controlSocketPath(paths.runtimeDir), display === undefined ? request() : undefined);
  if (socket !== undefined) {
    if (display !== undefined) {
      let x11: LocalDisplay | undefined;
      try {
        x11 = await display;
      } catch (error) {
        socket.destroy();
        throw error;
      }
      socket.write(request(x11));
    }
    const { answer, leftover } = await readAnswer(socket);
    const result = throwIfError(answer) as { stdio?: Partial<StdioTaken> } | undefined;
    socket.resume();
    const taken = result?.stdio;
    return {
      remote: framedProcess(socket, leftover),
      // Closed a turn later: `ebp run` exits first (its exit closes the socket), a third of a
      // millisecond sooner.
      done: () => { setImmediate(() => socket.destroy()); },
      taken: { stdin: taken?.stdin === true, stdout: taken?.stdout === true, stderr: taken?.stderr === true },
    };
  }
  // No local daemon: this process dials the peer itself (loaded only now: it is the slow path).
  return launchDirect(paths, spec, display);
}

/** A query (ebp:apps) to a peer, through the daemon when it runs. */
export async function queryPeer(paths: StatePaths, peer: string, query: string): Promise<string> {
  try {
    return String(await callDaemon(paths.runtimeDir, 'query', { peer, query }));
  } catch (error) {
    if (!(error instanceof EbpError) || error.code !== 'DAEMON_NOT_RUNNING') throw error;
  }
  return queryDirect(paths, peer, query);
}
