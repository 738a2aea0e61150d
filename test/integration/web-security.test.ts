// The local web page's defences, attacked for real over HTTP and WebSocket against a real daemon:
// no token, a wrong token, a foreign Host (DNS rebinding), cross-origin and cross-site POSTs,
// WebSockets from another origin or without the cookie; the token file's mode; the listening
// address (loopback only); the CSP header.
import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import { poolCleanup, sessionsOf } from './helpers/pool.js';
import { raw, startWebDaemon, tryWebSocket, type WebDaemon } from './helpers/web.js';

const SKIP = IS_ROOT ? false : 'needs root (sandboxes run as the ebp-sandbox user)';
let host: WebDaemon;

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  host = await startWebDaemon('websec', { name: 'websec', policy: 'open' });
});
after(poolCleanup);

const json = { 'Content-Type': 'application/json' };

describe('web page access', { skip: SKIP }, () => {
  test('the token file is the owner\'s alone', () => {
    const mode = statSync(join(host.stateDir, 'ui-token')).mode & 0o777;
    assert.equal(mode, 0o600);
    assert.equal(readFileSync(join(host.stateDir, 'ui-token'), 'utf8').trim(), host.token);
  });

  test('without the token: 401 for the page, the API and the event stream', async () => {
    for (const path of ['/', '/index.html', '/api/pool', '/api/sessions', '/api/events', '/api/requests']) {
      const answer = await raw(host.uiPort, { path });
      assert.equal(answer.status, 401, `${path}: ${answer.status} ${answer.body}`);
      assert.doesNotMatch(answer.body, /SHA256:/);
    }
    const wrongCookie = await raw(host.uiPort, { path: '/api/pool', headers: { Cookie: `ebp_ui_${host.uiPort}=${'A'.repeat(43)}` } });
    assert.equal(wrongCookie.status, 401);
  });

  test('a wrong token in the URL is refused; the right one becomes an HttpOnly SameSite=Strict cookie', async () => {
    const wrong = await raw(host.uiPort, { path: `/?token=${'B'.repeat(43)}` });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.headers['set-cookie'], undefined);
    const right = await raw(host.uiPort, { path: `/?token=${host.token}` });
    assert.equal(right.status, 303);
    assert.equal(right.headers.location, '/', 'the token leaves the address bar');
    const cookie = String(right.headers['set-cookie']);
    assert.match(cookie, new RegExp(`^ebp_ui_${host.uiPort}=${host.token};`));
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const page = await raw(host.uiPort, { path: '/', headers: { Cookie: host.cookie } });
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>eBrainPool<\/title>/);
  });

  test('every answer carries a strict CSP and no framing', async () => {
    const page = await raw(host.uiPort, { path: '/', headers: { Cookie: host.cookie } });
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/, 'no inline script, no eval');
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.doesNotMatch(page.body, /<script>(?!<\/script>)/, 'the built page has no inline script');
  });

  test('a foreign Host (DNS rebinding) is refused, even with the cookie', async () => {
    for (const name of [`evil.example:${host.uiPort}`, `127.0.0.1.evil.example:${host.uiPort}`, 'localhost:1', `198.18.0.1:${host.uiPort}`]) {
      const answer = await raw(host.uiPort, { path: '/api/pool', headers: { Host: name, Cookie: host.cookie } });
      assert.equal(answer.status, 421, `Host ${name}: ${answer.status}`);
    }
    for (const name of [`localhost:${host.uiPort}`, `[::1]:${host.uiPort}`, `127.0.0.1:${host.uiPort}`]) {
      const answer = await raw(host.uiPort, { path: '/api/pool', headers: { Host: name, Cookie: `ebp_ui_${host.uiPort}=${host.token}` } });
      assert.equal(answer.status, 200, `Host ${name}`);
    }
  });

  test('cross-origin and cross-site POSTs are refused and change nothing', async () => {
    const body = JSON.stringify({ app: 'echo', shared: false });
    const attacks: Record<string, string>[] = [
      { Origin: 'http://evil.example' },
      { Origin: `http://127.0.0.1:${host.uiPort + 1}` },
      { Origin: 'null' },
      { 'Sec-Fetch-Site': 'cross-site' },
      { 'Sec-Fetch-Site': 'same-site', Origin: host.origin },
      {},
    ];
    for (const headers of attacks) {
      const answer = await raw(host.uiPort, { method: 'POST', path: '/api/shared', headers: { ...json, Cookie: host.cookie, ...headers }, body });
      assert.equal(answer.status, 403, `${JSON.stringify(headers)}: ${answer.status} ${answer.body}`);
    }
    const shared = JSON.parse((await raw(host.uiPort, { path: '/api/shared', headers: { Cookie: host.cookie } })).body) as { id: string; shared: boolean }[];
    assert.equal(shared.find((app) => app.id === 'echo')?.shared, true, 'no attack switched the app off');
    // A form post (no JSON) from the page's own origin is refused too: only fetch() with JSON.
    const form = await raw(host.uiPort, { method: 'POST', path: '/api/shared', headers: { Cookie: host.cookie, Origin: host.origin, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'app=echo&shared=false' });
    assert.equal(form.status, 400);
    // The page itself can.
    const own = await raw(host.uiPort, { method: 'POST', path: '/api/shared', headers: { ...json, Cookie: host.cookie, Origin: host.origin, 'Sec-Fetch-Site': 'same-origin' }, body });
    assert.equal(own.status, 200, own.body);
    const back = await raw(host.uiPort, { method: 'POST', path: '/api/shared', headers: { ...json, Cookie: host.cookie, Origin: host.origin }, body: JSON.stringify({ app: 'echo', shared: true }) });
    assert.equal(back.status, 200, back.body);
  });

  test('WebSockets: a foreign origin, no origin or no cookie is refused before any launch', async () => {
    const url = `ws://127.0.0.1:${host.uiPort}/ws/terminal?peer=${encodeURIComponent(host.endpoint)}&app=sleep&cols=80&rows=24`;
    const foreign = await tryWebSocket(url, { Cookie: host.cookie }, 'http://evil.example');
    assert.equal(foreign.kind === 'refused' ? foreign.status : 'open', 403);
    const none = await tryWebSocket(url, { Cookie: host.cookie });
    assert.equal(none.kind === 'refused' ? none.status : 'open', 403);
    const noCookie = await tryWebSocket(url, {}, host.origin);
    assert.equal(noCookie.kind === 'refused' ? noCookie.status : 'open', 401);
    const rebound = await tryWebSocket(url, { Cookie: host.cookie, Host: `evil.example:${host.uiPort}` }, `http://evil.example:${host.uiPort}`);
    assert.equal(rebound.kind === 'refused' ? rebound.status : 'open', 421);
    const display = `ws://127.0.0.1:${host.uiPort}/ws/display?peer=${encodeURIComponent(host.endpoint)}&app=sleep&width=640&height=480`;
    const foreignDisplay = await tryWebSocket(display, { Cookie: host.cookie }, 'http://evil.example');
    assert.equal(foreignDisplay.kind === 'refused' ? foreignDisplay.status : 'open', 403);
    const badQuery = await tryWebSocket(`ws://127.0.0.1:${host.uiPort}/ws/terminal?peer=x&app=$(id)&cols=80&rows=24`, { Cookie: host.cookie }, host.origin);
    assert.equal(badQuery.kind === 'refused' ? badQuery.status : 'open', 400);
    assert.deepEqual(await sessionsOf(host), [], 'nothing was launched');
    const own = await tryWebSocket(url, { Cookie: host.cookie }, host.origin);
    if (own.kind !== 'open') assert.fail(`the page's own origin is refused (${own.status})`);
    own.socket.terminate();
  });

  test('the page listens on 127.0.0.1 only', async () => {
    const hex = host.uiPort.toString(16).toUpperCase().padStart(4, '0');
    const listening = (file: string): string[] => readFileSync(file, 'utf8').split('\n').slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[1]?.endsWith(`:${hex}`) === true && fields[3] === '0A')
      .map((fields) => fields[1] ?? '');
    assert.deepEqual(listening('/proc/net/tcp'), [`0100007F:${hex}`]);
    assert.deepEqual(listening('/proc/net/tcp6'), []);
    const others = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined && !a.internal && a.family === 'IPv4').map((a) => a?.address ?? '');
    for (const address of others) {
      const refused = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: address, port: host.uiPort });
        socket.once('connect', () => { socket.destroy(); resolve(false); });
        socket.once('error', () => { resolve(true); });
      });
      assert.ok(refused, `${address}:${host.uiPort} must not answer`);
    }
  });
});
