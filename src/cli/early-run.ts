// The early launch: a plain `ebp run` whose descriptors the local daemon opens itself (input
// from /dev/null, a pipe or a file; output to /dev/null or a terminal) is sent to the daemon and
// seen through to its exit status before the CLI's code is even loaded.
//
// A warm launch is one request to the daemon, which opens this process's stdin, stdout and
// stderr itself (control/caller-stdio.ts) and sends the app's exit status. The CLI's own start
// (its bundle, node:net, stream code: all cold in a fresh process) cost more than that whole
// launch. So the starter (code-cache.ts) calls startEarlyRun() first: it sends the request on a
// bare pipe handle (lib/raw-pipe.ts) and, in the plain case, waits for the status and exits
// with it; signals sent to this process go on to the app, as attach() does.
//
// Anything else (an error answer, descriptors the daemon did not take, any other frame, the
// connection ending early) is the run command's to handle: the starter then starts the run
// bundle, whose run command takes the connection over (takeEarlyRun) with every byte read so far,
// as if it had made it. Only a launch plainRun() accepts goes early (no options, display, files
// or terminal): what it sends is then exactly what the run command would have sent.
import type { Socket } from 'node:net';
import { existsSync, fstatSync } from 'node:fs';
import { statePaths } from '../config/paths.js';
import { controlSocketPath } from '../control/client.js';
import { Frame, FrameDecoder, encodeFrame } from '../control/frame-codec.js';
import { isDevNull } from '../lib/descriptors.js';
import { connectRawPipe, type RawPipe } from '../lib/raw-pipe.js';
import { exitStatus, type RemoteExit } from '../transport/remote-process.js';
import { FORWARDED_SIGNALS, plainRun, runRequestLine, type LaunchSpec } from './run-request.js';

/** A launch whose request is out, for the run command to take over. */
export interface EarlyRun {
  readonly spec: LaunchSpec;
  /** The daemon's connection, with what it sent so far still to be read. */
  readonly connection: Socket;
}

const SLOT = Symbol.for('ebp.early-run');

type Slot = { [SLOT]?: EarlyRun | undefined };

/** A launch that can go early: what to send, and where. */
export interface EarlyPlan {
  readonly spec: LaunchSpec;
  readonly socketPath: string;
}

/**
 * The early launch this command line would be, or undefined: not a plain launch, a terminal (it
 * needs the run command's attach: raw mode, resizes), descriptors the daemon would leave on the
 * relay, or no daemon (the run command dials the peer itself). Nothing is sent.
 */
export function planEarlyRun(argv: readonly string[]): EarlyPlan | undefined {
  const plain = plainRun(argv);
  if (plain === undefined || plain.spec.pty !== undefined || !stdioLikelyTaken()) return undefined;
  const socketPath = controlSocketPath(statePaths({ stateDir: plain.stateDir }).runtimeDir);
  return existsSync(socketPath) ? { spec: plain.spec, socketPath } : undefined;
}

/**
 * Sends the planned launch and returns true: `startBundle` is then called only if the run
 * command is needed after all (also when the connection fails: nothing went out then). False:
 * no pipe handle on this Node; nothing was sent.
 */
export function startEarlyRun(plan: EarlyPlan, startBundle: () => void): boolean {
  const { spec } = plan;
  const pipe: RawPipe | undefined = connectRawPipe(plan.socketPath, (status) => {
    if (status !== 0 || !pipe?.write(Buffer.from(runRequestLine(spec)))) {
      // Nothing went out: the run command starts from scratch (and meets the same failure).
      pipe?.close();
      startBundle();
      return;
    }
    follow(pipe, spec, startBundle);
  });
  return pipe !== undefined;
}

/** Reads the answer and the frames; exits with the status, or hands over to the run command. */
function follow(pipe: RawPipe, spec: LaunchSpec, startBundle: () => void): void {
  const received: Buffer[] = [];
  const decoder = new FrameDecoder();
  let answered = false;
  let handedOver = false;
  const forwarders = new Map<NodeJS.Signals, () => void>();
  const handOver = (): void => {
    if (handedOver) return;
    handedOver = true;
    for (const [signal, forward] of forwarders) process.off(signal, forward);
    const bytes = Buffer.concat(received);
    const socket = pipe.toSocket();
    if (bytes.length > 0) socket.unshift(bytes);
    (globalThis as Slot)[SLOT] = { spec, connection: socket };
    startBundle();
  };
  const onFrames = (chunk: Buffer): void => {
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch {
      handOver();
      return;
    }
    for (const { type, payload } of frames) {
      const exit = type === Frame.exit ? parseExit(payload) : undefined;
      // Descriptors the daemon took produce no output frames: anything but the status is news.
      if (exit === undefined || exit.kind === 'broken') {
        handOver();
        return;
      }
      process.exit(exitStatus(exit));
    }
  };
  pipe.read((chunk) => {
    if (handedOver) return;
    received.push(chunk);
    if (answered) {
      onFrames(chunk);
      return;
    }
    const all = Buffer.concat(received);
    const newline = all.indexOf(0x0a);
    if (newline === -1) return;
    if (!tookAllStdio(all.subarray(0, newline))) {
      handOver();
      return;
    }
    answered = true;
    for (const signal of FORWARDED_SIGNALS) {
      const forward = (): void => { pipe.write(encodeFrame(Frame.signal, JSON.stringify({ name: signal.slice(3) }))); };
      forwarders.set(signal, forward);
      process.on(signal, forward);
    }
    if (newline + 1 < all.length) onFrames(all.subarray(newline + 1));
  }, () => {
    // Ended without a status: the run command says how (it reads the same end).
    handOver();
  });
}

/**
 * Whether the daemon will likely open all three descriptors itself (control/caller-stdio.ts):
 * output to /dev/null or a terminal, input from anything but a socket. Pipes and files for
 * output stay on the frame relay, which is the run command's: going early would only add the
 * hand-over to that launch. A wrong guess costs the hand-over, nothing else.
 */
function stdioLikelyTaken(): boolean {
  try {
    const output = (fd: number): boolean => {
      const stats = fstatSync(fd);
      return isDevNull(stats) || stats.isCharacterDevice();
    };
    return output(1) && output(2) && !fstatSync(0).isSocket();
  } catch {
    return false;
  }
}

/** The answer said yes and the daemon opened stdin, stdout and stderr itself. */
function tookAllStdio(line: Buffer): boolean {
  try {
    const answer = JSON.parse(line.toString()) as { ok?: unknown; result?: { stdio?: Record<string, unknown> } };
    const stdio = answer.ok === true ? answer.result?.stdio : undefined;
    return stdio?.['stdin'] === true && stdio['stdout'] === true && stdio['stderr'] === true;
  } catch {
    return false;
  }
}

function parseExit(payload: Buffer): RemoteExit | undefined {
  try {
    const exit = JSON.parse(payload.toString()) as { kind?: unknown; code?: unknown; signal?: unknown };
    if (exit.kind === 'code' && Number.isInteger(exit.code)) return { kind: 'code', code: exit.code as number };
    if (exit.kind === 'signal' && typeof exit.signal === 'string') return { kind: 'signal', signal: exit.signal };
    return undefined;
  } catch {
    return undefined;
  }
}

/** The launch started early in this process, once: its taker owns it (and must use it). */
export function takeEarlyRun(): EarlyRun | undefined {
  const slot = globalThis as Slot;
  const early = slot[SLOT];
  slot[SLOT] = undefined;
  return early;
}
