// Helpers for the web page tests: a daemon with its page on (a free port on 127.0.0.1), its URL
// and token, raw HTTP requests with any headers (Host included), and WebSocket attempts.
import { request as httpRequest } from 'node:http';
import { WebSocket } from 'ws';
import { ebpOk, hostConfig, startDaemon, type HostConfig, type PoolDaemon } from './pool.js';

export interface WebDaemon extends PoolDaemon {
  readonly uiPort: number;
  readonly token: string;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** "ebp_ui_PORT=TOKEN" */
  readonly cookie: string;
  /** The login URL `ebp ui --print-url` gives. */
  readonly loginUrl: string;
}

/** The test host configuration with the page on, on a free port. */
export function webConfig(config: HostConfig): string {
  return hostConfig(config).replace('[ui]\nenabled = false', '[ui]\nenabled = true\nport = 0');
}

export async function startWebDaemon(label: string, config: HostConfig, env?: NodeJS.ProcessEnv): Promise<WebDaemon> {
  const daemon = await startDaemon({ label, config: webConfig(config), ...(env === undefined ? {} : { env }) });
  const loginUrl = (await ebpOk(daemon.stateDir, ['ui', '--print-url'])).stdout.trim();
  const match = /^http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9_-]+)$/.exec(loginUrl);
  if (match === null) throw new Error(`unexpected ui URL: ${loginUrl}`);
  const uiPort = Number(match[1]);
  const token = match[2] ?? '';
  return { ...daemon, uiPort, token, loginUrl, origin: `http://127.0.0.1:${uiPort}`, cookie: `ebp_ui_${uiPort}=${token}` };
}

export interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One HTTP request to 127.0.0.1:port with exactly these headers (Host may be anything). */
export function raw(port: number, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: { Host: `127.0.0.1:${port}`, ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }); });
      // An event stream never ends: take what came in the first moment.
      if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        setTimeout(() => { res.destroy(); resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }); }, 200);
      }
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export type WsOutcome = { readonly kind: 'open'; readonly socket: WebSocket } | { readonly kind: 'refused'; readonly status: number };

/** Tries a WebSocket with these headers; resolves with the HTTP status when refused. */
export function tryWebSocket(url: string, headers: Record<string, string>, origin?: string): Promise<WsOutcome> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, ...(origin === undefined ? {} : { origin }) });
    socket.once('open', () => { resolve({ kind: 'open', socket }); });
    socket.once('unexpected-response', (_req, res) => {
      resolve({ kind: 'refused', status: res.statusCode ?? 0 });
      res.resume();
    });
    socket.once('error', (error) => { reject(error); });
  });
}
