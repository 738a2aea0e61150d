// A terminal app in the page: a WebSocket bridged to a session on a peer, opened on the daemon's
// SSH connection to it with a pty. Binary messages carry the terminal's bytes both ways; text
// messages carry control as JSON: from the page {"type":"resize","cols","rows"}, to the page
// {"type":"started"} and {"type":"exit","status","message"?}.
import type { WebSocket, RawData } from 'ws';
import { EbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { exitStatus, type RemoteExit, type RemoteProcess } from '../transport/remote-process.js';
import { boundedInteger, launchTarget } from './query.js';
import type { TerminalSize, WebServices } from './services.js';

export interface TerminalQuery {
  readonly peer: string;
  readonly app: string;
  readonly size: TerminalSize;
}

/** Output waits while this much is queued for the page (the peer then slows down). */
const HIGH_WATER = 1024 * 1024;


/** Validates the WebSocket URL's query: ?peer=TARGET&app=ID&cols=N&rows=N. */
export function parseTerminalQuery(params: URLSearchParams): TerminalQuery {
  const dimension = (name: string): number => boundedInteger(params.get(name), name, 1, 1000);
  return { ...launchTarget(params), size: { cols: dimension('cols'), rows: dimension('rows') } };
}

type Control = { readonly type: 'resize'; readonly cols: number; readonly rows: number };

function parseControl(text: string): Control | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (record['type'] === 'resize' && typeof record['cols'] === 'number' && typeof record['rows'] === 'number') {
    const { cols, rows } = record as { cols: number; rows: number };
    if (Number.isInteger(cols) && Number.isInteger(rows) && cols >= 1 && rows >= 1 && cols <= 1000 && rows <= 1000) return { type: 'resize', cols, rows };
  }
  return undefined;
}

function exitMessage(exit: RemoteExit): { status: number; message?: string } {
  const status = exitStatus(exit);
  switch (exit.kind) {
    case 'code':
      return exit.message === undefined ? { status } : { status, message: exit.message };
    case 'signal':
      return { status, message: `ended by SIG${exit.signal.replace(/^SIG/, '')}` };
    case 'broken':
      return { status, message: exit.message };
    default:
      return assertNever(exit);
  }
}

/** Runs the app and relays until either side ends; the session ends with the page. */
export async function bridgeTerminal(ws: WebSocket, query: TerminalQuery, context: { services: WebServices; log: Logger }): Promise<void> {
  let remote: RemoteProcess;
  const early: Control[] = [];
  const onEarly = (data: RawData, binary: boolean): void => {
    if (!binary) {
      const control = parseControl(bytesOf(data).toString());
      if (control !== undefined) early.push(control);
    }
  };
  ws.on('message', onEarly);
  try {
    remote = await context.services.openTerminal(query.peer, query.app, query.size);
  } catch (error) {
    const ebp = error instanceof EbpError ? error : new EbpError('SESSION_BROKEN', error instanceof Error ? error.message : String(error));
    ws.send(JSON.stringify({ type: 'exit', status: ebp.exitStatus, message: ebp.hint === undefined ? ebp.message : `${ebp.message} (${ebp.hint})` }));
    ws.close(1000);
    return;
  }
  ws.off('message', onEarly);
  if (ws.readyState !== ws.OPEN) {
    remote.close();
    return;
  }
  context.log('web-terminal', { peer: query.peer, app: query.app });
  ws.send(JSON.stringify({ type: 'started' }));
  for (const control of early) remote.resize(control.cols, control.rows);
  const forward = (chunk: Buffer, stream: NodeJS.ReadableStream): void => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true }, () => {
      if (ws.bufferedAmount < HIGH_WATER && stream.isPaused()) stream.resume();
    });
    if (ws.bufferedAmount >= HIGH_WATER) stream.pause();
  };
  remote.stdout.on('data', (chunk: Buffer) => { forward(chunk, remote.stdout); });
  remote.stderr.on('data', (chunk: Buffer) => { forward(chunk, remote.stderr); });
  ws.on('message', (data: RawData, binary: boolean) => {
    const bytes = bytesOf(data);
    if (binary) {
      remote.stdin.write(bytes);
      return;
    }
    const control = parseControl(bytes.toString());
    if (control !== undefined) remote.resize(control.cols, control.rows);
  });
  ws.once('close', () => {
    remote.close();
  });
  const exit = await remote.exit;
  if (ws.readyState === ws.OPEN as number) {
    ws.send(JSON.stringify({ type: 'exit', ...exitMessage(exit) }));
    ws.close(1000);
  }
}

function bytesOf(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.isBuffer(data) ? data : Buffer.from(data);
}

function assertNever(value: never): never {
  throw new EbpError('INTERNAL', `unexpected value ${String(value)}`);
}
