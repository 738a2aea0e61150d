// A GUI app in the page: a WebSocket carrying the RFB stream of the app's own Xvnc display on its
// host (see display/vnc.ts), relayed over the daemon's SSH session to that peer; noVNC in the
// page is the viewer. The socket carries RFB bytes only; how the session ended is told in the
// close frame (code 4000, reason "status N: message").
import type { WebSocket, RawData } from 'ws';
import type { VncDisplay } from '../display/vnc.js';
import { EbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { exitStatus, type RemoteProcess } from '../transport/remote-process.js';
import { boundedInteger, launchTarget } from './query.js';
import type { WebServices } from './services.js';

export interface DisplayQuery {
  readonly peer: string;
  readonly app: string;
  readonly display: VncDisplay;
}

/** Application close code: the session on the peer ended (reason says how). */
export const SESSION_ENDED = 4000;
const HIGH_WATER = 4 * 1024 * 1024;
/** Validates ?peer=TARGET&app=ID&width=W&height=H. */
export function parseDisplayQuery(params: URLSearchParams): DisplayQuery {
  const pixels = (name: string): number => boundedInteger(params.get(name), name, 64, 8192, 'pixels');
  return { ...launchTarget(params), display: { kind: 'vnc', width: pixels('width'), height: pixels('height') } };
}

/** A close reason fits in 123 bytes. */
function reason(text: string): string {
  let out = text;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

export async function bridgeDisplay(ws: WebSocket, query: DisplayQuery, context: { services: WebServices; log: Logger }): Promise<void> {
  let remote: RemoteProcess;
  try {
    remote = await context.services.openDisplay(query.peer, query.app, query.display);
  } catch (error) {
    const ebp = error instanceof EbpError ? error : new EbpError('SESSION_BROKEN', error instanceof Error ? error.message : String(error));
    ws.close(SESSION_ENDED, reason(`status ${ebp.exitStatus}: ${ebp.message}`));
    return;
  }
  if (ws.readyState !== ws.OPEN) {
    remote.close();
    return;
  }
  context.log('web-display', { peer: query.peer, app: query.app, size: `${query.display.width}x${query.display.height}` });
  let lastError = '';
  remote.stderr.on('data', (chunk: Buffer) => {
    lastError = chunk.toString('utf8').trim().split('\n').pop() ?? lastError;
  });
  remote.stdout.on('data', (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true }, () => {
      if (ws.bufferedAmount < HIGH_WATER && remote.stdout.isPaused()) remote.stdout.resume();
    });
    if (ws.bufferedAmount >= HIGH_WATER) remote.stdout.pause();
  });
  ws.on('message', (data: RawData, binary: boolean) => {
    if (!binary) return;
    remote.stdin.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
  });
  ws.once('close', () => {
    remote.close();
  });
  const exit = await remote.exit;
  if (ws.readyState === ws.OPEN as number) {
    const status = exitStatus(exit);
    ws.close(SESSION_ENDED, reason(`status ${status}${lastError === '' ? '' : `: ${lastError.replace(/^ebp: /, '')}`}`));
  }
}
