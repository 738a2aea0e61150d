// The web page's gatekeeper, as pure functions: which Host names, origins and tokens a request to
// the local page may carry. The server (server.ts) applies them to every request and WebSocket.
//
// Threats: (1) any web site the person visits can make their browser send requests to
// 127.0.0.1 (CSRF, cross-site WebSockets); (2) a site can rebind its own DNS name to 127.0.0.1
// and then read the answers as same-origin (DNS rebinding); (3) any other local user can connect
// to a loopback port. Hence: a secret token (only the owner can read its file or ask the daemon
// for it), a Host header that must name loopback, and an Origin that must be the page's own.
import { timingSafeEqual } from 'node:crypto';

/** The cookie that carries the token after the first visit. */
export const TOKEN_COOKIE = 'ebp_ui';

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** The origins the page itself is served from, for a port. */
export function ownOrigins(port: number): string[] {
  return [...LOOPBACK_NAMES].map((name) => `http://${name}:${port}`);
}

/**
 * True when the Host header names loopback with our port. A rebound DNS name (evil.example:PORT)
 * is refused even though the TCP connection came to 127.0.0.1.
 */
export function hostAllowed(host: string | undefined, port: number): boolean {
  if (host === undefined) return false;
  const lower = host.toLowerCase();
  for (const name of LOOPBACK_NAMES) if (lower === `${name}:${port}`) return true;
  return false;
}

export type OriginVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * For state-changing requests and WebSockets: the Origin must be the page's own. Browsers send
 * Origin on every POST and WebSocket; when it is missing, Sec-Fetch-Site must say same-origin.
 * A request with neither is refused too: only a browser can be the confused deputy, and every
 * browser we serve sends one of them.
 */
export function originAllowed(headers: { origin?: string | undefined; secFetchSite?: string | undefined }, port: number): OriginVerdict {
  const { origin, secFetchSite } = headers;
  if (secFetchSite !== undefined && secFetchSite !== 'same-origin' && secFetchSite !== 'none') {
    return { ok: false, reason: `cross-site request (Sec-Fetch-Site: ${secFetchSite.slice(0, 32)})` };
  }
  if (origin !== undefined) {
    if (ownOrigins(port).includes(origin.toLowerCase())) return { ok: true };
    return { ok: false, reason: `foreign origin ${origin.slice(0, 80)}` };
  }
  if (secFetchSite === 'same-origin') return { ok: true };
  return { ok: false, reason: 'no Origin or Sec-Fetch-Site header' };
}

/** The value of one cookie from a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Constant-time comparison, so that the token cannot be guessed byte by byte from timings. */
export function tokenMatches(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The page's Content-Security-Policy: scripts only from the page's own files (no inline script,
 * no eval), connections only to itself, never framed. Inline styles are allowed because the
 * terminal and VNC views size their elements with style attributes; styles cannot run code.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');
