// The local web page: an HTTP server on loopback only (never another address), serving the
// built page (dist/web), a small JSON API over the daemon's services, live change events
// (Server-Sent Events) and WebSockets for terminals. Every request passes guard.ts first.
import { readdirSync, statSync, createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { extname, join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { EbpError, STATUS } from '../lib/errors.js';
import { packageRoot } from '../lib/package-root.js';
import type { Logger } from '../lib/log.js';
import { CONTENT_SECURITY_POLICY, TOKEN_COOKIE, cookieValue, hostAllowed, originAllowed, tokenMatches } from './guard.js';
import { bridgeDisplay, parseDisplayQuery } from './display.js';
import { APP_ID, PEER_TEXT } from './query.js';
import { bridgeTerminal, parseTerminalQuery } from './terminal.js';
import type { ChangeTopic, WebServices } from './services.js';

/** Only these: the page is for the person at this machine. */
export const LOOPBACK_HOST = '127.0.0.1';

const MAX_BODY = 16 * 1024;
const HEARTBEAT_MS = 15_000;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};


/** The built page: dist/web in the package. */
export function defaultStaticDir(): string {
  return join(packageRoot(), 'dist', 'web');
}

export interface WebServerOptions {
  readonly port: number;
  readonly token: string;
  readonly services: WebServices;
  readonly log: Logger;
  readonly staticDir?: string;
}

/** URL path -> file, for the files that exist in the built page at start (no path is ever joined from a request). */
function staticFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (folder: string, prefix: string): void => {
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path, `${prefix}${name}/`);
      else files.set(`${prefix}${name}`, path);
    }
  };
  walk(dir, '/');
  return files;
}

function securityHeaders(response: ServerResponse): void {
  response.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  response.setHeader('X-Content-Type-Options', 'nosniff');
  response.setHeader('X-Frame-Options', 'DENY');
  response.setHeader('Referrer-Policy', 'no-referrer');
  response.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  response.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  response.setHeader('Cache-Control', 'no-store');
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}

function sendError(response: ServerResponse, error: unknown): void {
  const ebp = error instanceof EbpError ? error : new EbpError('INTERNAL', error instanceof Error ? error.message : String(error));
  sendJson(response, STATUS[ebp.code].http, { error: { code: ebp.code, message: ebp.message, ...(ebp.hint === undefined ? {} : { hint: ebp.hint }) } });
}

function refuse(response: ServerResponse, status: number, message: string): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  response.end(`${message}\n`);
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(request.headers['content-type'] ?? '').startsWith('application/json')) {
    throw new EbpError('USAGE', 'the request body must be JSON (Content-Type: application/json)');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new EbpError('USAGE', `the request body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new EbpError('USAGE', 'the request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EbpError('USAGE', 'the request body must be a JSON object');
  return value as Record<string, unknown>;
}

function field(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== 'string' || value === '' || value.length > 256) throw new EbpError('USAGE', `"${key}" must be a non-empty string`);
  return value;
}

export class WebServer {
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #options: WebServerOptions;
  readonly #files: Map<string, string>;
  readonly #events = new Set<ServerResponse>();
  readonly #sockets = new Set<Socket>();
  readonly #unsubscribe: () => void;
  #port = 0;
  #closing: Promise<void> | undefined;

  private constructor(options: WebServerOptions) {
    this.#options = options;
    this.#files = staticFiles(options.staticDir ?? defaultStaticDir());
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
    this.#server = createServer((request, response) => {
      void this.#handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) sendError(response, error);
        else response.destroy();
      });
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
      this.#upgrade(request, socket, head);
    });
    this.#unsubscribe = options.services.onChange((topic) => {
      this.#broadcast(topic);
    });
  }

  /** Listens on 127.0.0.1 only. Port 0 picks a free one (see `port`). */
  static async listen(options: WebServerOptions): Promise<WebServer> {
    const server = new WebServer(options);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', (error: NodeJS.ErrnoException) => {
        reject(new EbpError('USAGE', `cannot serve the web page on ${LOOPBACK_HOST}:${options.port}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`, {
          hint: 'pick another with `ebp up --ui-port N`, or turn the page off with --no-ui',
          cause: error,
        }));
      });
      // Threat: anyone on the LAN reaching the owner's controls. Loopback only, always.
      server.#server.listen(options.port, LOOPBACK_HOST, resolve);
    });
    server.#port = (server.#server.address() as AddressInfo).port;
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get cookieName(): string {
    return `${TOKEN_COOKIE}_${this.#port}`;
  }

  /** The URL that logs a browser in (the token moves to a cookie at once). */
  get url(): string {
    return `http://${LOOPBACK_HOST}:${this.#port}/?token=${this.#options.token}`;
  }

  #authorized(request: IncomingMessage): boolean {
    return tokenMatches(cookieValue(request.headers.cookie, this.cookieName), this.#options.token);
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    securityHeaders(response);
    // DNS rebinding: a foreign name pointed at 127.0.0.1 must not reach the page.
    if (!hostAllowed(request.headers.host, this.#port)) {
      refuse(response, 421, 'this page answers only to 127.0.0.1, localhost or [::1] with its port');
      return;
    }
    const url = new URL(request.url ?? '/', `http://${LOOPBACK_HOST}:${this.#port}`);
    const method = request.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      // CSRF: any site can make the browser POST here; only the page itself may.
      const verdict = originAllowed({ origin: request.headers.origin, secFetchSite: header(request, 'sec-fetch-site') }, this.#port);
      if (!verdict.ok) {
        refuse(response, 403, `refused: ${verdict.reason}`);
        return;
      }
    }
    if (url.pathname === '/' && url.searchParams.has('token')) {
      if (!tokenMatches(url.searchParams.get('token') ?? undefined, this.#options.token)) {
        refuse(response, 403, 'wrong token: open the page with `ebp ui`');
        return;
      }
      // The token leaves the URL (history, screenshots) for a cookie scripts cannot read.
      response.writeHead(303, {
        Location: '/',
        'Set-Cookie': `${this.cookieName}=${this.#options.token}; HttpOnly; SameSite=Strict; Path=/`,
      });
      response.end();
      return;
    }
    if (!this.#authorized(request)) {
      refuse(response, 401, 'this page needs its token: open it with `ebp ui` (or `ebp ui --print-url`)');
      return;
    }
    if (url.pathname.startsWith('/api/')) {
      await this.#api(method, url, request, response);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      refuse(response, 405, 'method not allowed');
      return;
    }
    const file = this.#files.get(url.pathname === '/' ? '/index.html' : url.pathname);
    if (file === undefined) {
      refuse(response, 404, this.#files.size === 0 ? 'the page is not built: run `npm run build`' : 'not found');
      return;
    }
    response.writeHead(200, { 'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' });
    if (method === 'HEAD') response.end();
    else createReadStream(file).pipe(response);
  }

  async #api(method: string, url: URL, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const services = this.#options.services;
    const path = url.pathname;
    const get = method === 'GET';
    const post = method === 'POST';
    let match: RegExpExecArray | null;
    if (get && path === '/api/pool') sendJson(response, 200, await services.pool());
    else if (get && path === '/api/requests') sendJson(response, 200, services.requests());
    else if (get && path === '/api/sessions') sendJson(response, 200, await services.sessions());
    else if (get && path === '/api/trusted') sendJson(response, 200, services.trusted());
    else if (get && path === '/api/shared') sendJson(response, 200, services.shared());
    else if (get && path === '/api/desktop') sendJson(response, 200, services.desktop());
    else if (get && path === '/api/events') this.#subscribe(response);
    else if (get && (match = /^\/api\/icons\/([A-Za-z0-9._-]{1,128})$/.exec(path)) !== null) await this.#icon(match[1] ?? '', url.searchParams.get('peer') ?? undefined, response);
    else if (post && (match = /^\/api\/requests\/([0-9a-f]{1,32})$/.exec(path)) !== null) {
      const decision = field(await readJson(request), 'decision');
      if (decision !== 'allow' && decision !== 'always' && decision !== 'deny') throw new EbpError('USAGE', 'decision must be allow, always or deny');
      sendJson(response, 200, services.decide(match[1] ?? '', decision));
    } else if (post && (match = /^\/api\/sessions\/([A-Za-z0-9_-]{1,64})\/stop$/.exec(path)) !== null) {
      await readJson(request);
      sendJson(response, 200, await services.stop(match[1] ?? ''));
    } else if (post && path === '/api/desktop') {
      const body = await readJson(request);
      const peer = field(body, 'peer');
      const app = field(body, 'app');
      if (!PEER_TEXT.test(peer)) throw new EbpError('USAGE', '"peer" must be a fingerprint, a name or HOST:PORT');
      if (!APP_ID.test(app)) throw new EbpError('USAGE', '"app" must be an app id');
      sendJson(response, 202, services.openOnDesktop(peer, app));
    } else if (post && (match = /^\/api\/desktop\/([0-9a-f]{1,32})\/stop$/.exec(path)) !== null) {
      await readJson(request);
      sendJson(response, 200, services.stopOnDesktop(match[1] ?? ''));
    } else if (post && path === '/api/untrust') {
      sendJson(response, 200, await services.untrust(field(await readJson(request), 'id')));
    } else if (post && path === '/api/shared') {
      const body = await readJson(request);
      const shared = body['shared'];
      if (typeof shared !== 'boolean') throw new EbpError('USAGE', '"shared" must be true or false');
      sendJson(response, 200, await services.setShared(field(body, 'app'), shared));
    } else throw new EbpError('NOT_FOUND', `no ${method} ${path.slice(0, 80)} here`);
  }

  async #icon(appId: string, peer: string | undefined, response: ServerResponse): Promise<void> {
    if (peer !== undefined && !/^[A-Za-z0-9:+/=.@[\]_ -]{1,128}$/.test(peer)) throw new EbpError('USAGE', 'peer must be a fingerprint, a name or HOST:PORT');
    const icon = await this.#options.services.icon(appId, peer);
    if (icon === undefined) throw new EbpError('NOT_FOUND', `no icon for "${appId}"`);
    // An SVG could carry script: served with a sandboxing CSP of its own, shown only via <img>.
    response.writeHead(200, {
      'Content-Type': icon.type, 'Content-Length': icon.data.length,
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; sandbox",
      'Cache-Control': 'private, max-age=300',
    });
    response.end(icon.data);
  }

  #subscribe(response: ServerResponse): void {
    response.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    response.write(': connected\n\n');
    this.#events.add(response);
    const beat = setInterval(() => response.write(': beat\n\n'), HEARTBEAT_MS);
    beat.unref();
    response.once('close', () => {
      clearInterval(beat);
      this.#events.delete(response);
    });
  }

  #broadcast(topic: ChangeTopic): void {
    for (const response of this.#events) response.write(`event: change\ndata: ${JSON.stringify({ topic })}\n\n`);
  }

  #upgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    const deny = (status: number, message: string): void => {
      socket.end(`HTTP/1.1 ${status} ${message}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (!hostAllowed(request.headers.host, this.#port)) {
      deny(421, 'Misdirected Request');
      return;
    }
    // Cross-site WebSocket hijacking: browsers send cookies with any site's WebSocket, so the
    // Origin must be the page's own, always (a WebSocket always carries one).
    const origin = request.headers.origin;
    if (origin === undefined || !originAllowed({ origin, secFetchSite: header(request, 'sec-fetch-site') }, this.#port).ok) {
      deny(403, 'Forbidden');
      return;
    }
    if (!this.#authorized(request)) {
      deny(401, 'Unauthorized');
      return;
    }
    const url = new URL(request.url ?? '/', `http://${LOOPBACK_HOST}:${this.#port}`);
    const context = { services: this.#options.services, log: this.#options.log };
    let start: (ws: WebSocket) => Promise<void>;
    try {
      if (url.pathname === '/ws/terminal') {
        const query = parseTerminalQuery(url.searchParams);
        start = (ws) => bridgeTerminal(ws, query, context);
      } else if (url.pathname === '/ws/display') {
        const query = parseDisplayQuery(url.searchParams);
        start = (ws) => bridgeDisplay(ws, query, context);
      } else {
        deny(404, 'Not Found');
        return;
      }
    } catch {
      deny(400, 'Bad Request');
      return;
    }
    this.#wss.handleUpgrade(request, socket, head, (ws: WebSocket) => {
      void start(ws);
    });
  }

  /** Stops listening and ends every open page connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#unsubscribe();
      for (const response of this.#events) response.end();
      for (const client of this.#wss.clients) client.terminate();
      this.#wss.close();
      const closed = new Promise<void>((resolve) => this.#server.close(() => { resolve(); }));
      for (const socket of this.#sockets) socket.destroy();
      await closed;
    })();
    return this.#closing;
  }
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
