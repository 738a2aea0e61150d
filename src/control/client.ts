// The CLI's side of the control socket: ask the local daemon, or learn that none runs.
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { EbpError, type ErrorCode } from '../lib/errors.js';
import type { ControlAnswer } from './server.js';

export function controlSocketPath(runtimeDir: string): string {
  return join(runtimeDir, 'control.sock');
}

/** Connects, or resolves undefined when no daemon listens there. */
export async function connectControl(path: string, firstLine?: string): Promise<Socket | undefined> {
  // Nothing there: no daemon, known without a socket and its error (a one-shot command's start).
  if (!existsSync(path)) return undefined;
  return new Promise((resolve, reject) => {
    // node:net is loaded here, not with the module: the early launch's starter (cli/early-run.ts)
    // has this module inside, and a command that talks to no daemon should not pay for it.
    const socket = process.getBuiltinModule('node:net').connect(path);
    // Sent with the connection rather than after it: the daemon starts on it while this process
    // still waits for its connect event (a fresh process spends a fifth of a millisecond there).
    // If there is no daemon after all, the write fails with the connection, unseen.
    if (firstLine !== undefined) socket.write(firstLine);
    let settled = false;
    socket.once('connect', () => {
      settled = true;
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') resolve(undefined);
      else reject(new EbpError('DAEMON_NOT_RUNNING', `cannot talk to the local daemon at ${path}: ${error.message}`, { cause: error }));
    });
  });
}

/** Reads the one JSON answer line; what follows it (frames) is returned as leftover. */
export async function readAnswer(socket: Socket): Promise<{ answer: ControlAnswer; leftover: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const newline = buffer.indexOf(0x0a);
      if (newline === -1) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      try {
        resolve({ answer: JSON.parse(buffer.subarray(0, newline).toString()) as ControlAnswer, leftover: buffer.subarray(newline + 1) });
      } catch (error) {
        reject(new EbpError('DAEMON_NOT_RUNNING', 'the local daemon sent an answer that is not JSON', { cause: error }));
      }
    };
    const onClose = (): void => {
      reject(new EbpError('DAEMON_NOT_RUNNING', 'the local daemon closed the connection without answering'));
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

export function throwIfError(answer: ControlAnswer): unknown {
  if (answer.ok) return answer.result;
  const error = answer.error ?? { code: 'INTERNAL', message: 'unknown error from the daemon' };
  throw new EbpError(error.code as ErrorCode, error.message, error.hint === undefined ? {} : { hint: error.hint });
}

/** One request to the running daemon; DAEMON_NOT_RUNNING when there is none. */
export async function callDaemon(runtimeDir: string, op: string, params: Record<string, unknown> = {}): Promise<unknown> {
  const path = controlSocketPath(runtimeDir);
  const socket = await connectControl(path);
  if (socket === undefined) {
    throw new EbpError('DAEMON_NOT_RUNNING', 'the ebp daemon is not running here', { hint: 'start it with `ebp up` (or `npm start`); with --state-dir, give the same one' });
  }
  socket.write(`${JSON.stringify({ op, params })}\n`);
  const { answer } = await readAnswer(socket);
  socket.destroy();
  return throwIfError(answer);
}
