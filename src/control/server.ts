// The daemon's control socket: a Unix socket in a 0700 folder (no TCP port), one JSON request
// line and one JSON answer line per connection; a launch switches the connection to frames.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { EbpError } from '../lib/errors.js';

export type ControlHandler = (params: Record<string, unknown>) => unknown;
/** Takes over the socket after the request line (launch relays). */
export type StreamHandler = (params: Record<string, unknown>, socket: Socket, leftover: Buffer) => Promise<void>;

const MAX_REQUEST = 64 * 1024;

export interface ControlAnswer {
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: { readonly code: string; readonly message: string; readonly hint?: string };
}

function errorAnswer(error: unknown): ControlAnswer {
  const ebp = error instanceof EbpError ? error : new EbpError('INTERNAL', error instanceof Error ? error.message : String(error));
  return { ok: false, error: { code: ebp.code, message: ebp.message, ...(ebp.hint === undefined ? {} : { hint: ebp.hint }) } };
}

export class ControlServer {
  readonly #server: Server;
  readonly path: string;

  private constructor(path: string, handlers: Readonly<Record<string, ControlHandler>>, streams: Readonly<Record<string, StreamHandler>>) {
    this.path = path;
    this.#server = createServer((socket) => {
      let buffer = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        buffer = Buffer.concat([buffer, chunk]);
        const newline = buffer.indexOf(0x0a);
        if (newline === -1) {
          if (buffer.length > MAX_REQUEST) socket.destroy();
          return;
        }
        socket.off('data', onData);
        socket.pause();
        const line = buffer.subarray(0, newline).toString();
        const leftover = buffer.subarray(newline + 1);
        void this.#handle(line, socket, leftover, handlers, streams);
      };
      socket.on('data', onData);
      socket.on('error', () => undefined);
    });
  }

  static async listen(path: string, handlers: Readonly<Record<string, ControlHandler>>, streams: Readonly<Record<string, StreamHandler>>): Promise<ControlServer> {
    // Threat: another local user driving this daemon. The folder is ours alone (0700); no TCP.
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    chmodSync(dirname(path), 0o700);
    rmSync(path, { force: true });
    const control = new ControlServer(path, handlers, streams);
    await new Promise<void>((resolve, reject) => {
      control.#server.once('error', reject);
      control.#server.listen(path, resolve);
    });
    chmodSync(path, 0o600);
    return control;
  }

  async #handle(line: string, socket: Socket, leftover: Buffer, handlers: Readonly<Record<string, ControlHandler>>, streams: Readonly<Record<string, StreamHandler>>): Promise<void> {
    let request: { op?: unknown; params?: unknown };
    try {
      request = JSON.parse(line) as { op?: unknown; params?: unknown };
    } catch {
      socket.end(`${JSON.stringify(errorAnswer(new EbpError('USAGE', 'the control request is not JSON')))}\n`);
      return;
    }
    const op = typeof request.op === 'string' ? request.op : '';
    const params = typeof request.params === 'object' && request.params !== null ? request.params as Record<string, unknown> : {};
    const stream = streams[op];
    if (stream !== undefined) {
      try {
        await stream(params, socket, leftover);
      } catch (error) {
        if (!socket.destroyed) socket.end(`${JSON.stringify(errorAnswer(error))}\n`);
      }
      return;
    }
    const handler = handlers[op];
    let answer: ControlAnswer;
    if (handler === undefined) answer = errorAnswer(new EbpError('USAGE', `unknown control request "${op.slice(0, 32)}"`));
    else {
      try {
        answer = { ok: true, result: await handler(params) };
      } catch (error) {
        answer = errorAnswer(error);
      }
    }
    socket.end(`${JSON.stringify(answer)}\n`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => { resolve(); }));
    rmSync(this.path, { force: true });
  }
}
