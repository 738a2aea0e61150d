// The page's third way to open a GUI app: on the daemon's own desktop. A real Xvfb (cookie
// required, TCP off) is the person's display, the person's daemon runs with DISPLAY pointing at
// it, and Chromium drives the person's page: "Open on this desktop" for xeyes shared by the host
// daemon shows the window on that display (found with xdotool, seen in an xwd screenshot); Stop
// in the page ends the session on the host and the window goes away. A daemon without a display
// offers no such button and refuses the launch; the route has the page's guards.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import { ebpOk, poolCleanup, sessionsOf, tempRoot, trustClient, waitForRequest, waitUntil } from './helpers/pool.js';
import { raw, startWebDaemon, type WebDaemon } from './helpers/web.js';
import { geometry, screenshot, startXvfb, windowsNamed, X11_MISSING, type Xvfb } from './helpers/xvfb.js';

const CHROMIUM = '/usr/bin/chromium';
const SKIP = !IS_ROOT ? 'needs root (sandboxes run as the ebp-sandbox user)'
  : !existsSync(CHROMIUM) ? `needs ${CHROMIUM}`
    : X11_MISSING.length > 0 ? `missing ${X11_MISSING.join(', ')}` : false;
const ARTIFACTS = process.env['EBP_ARTIFACTS'] ?? join(tmpdir(), 'ebp-web-artifacts');
const EYES = `ebp-desk-eyes-${process.pid}`;
/** Reaches the display (3 if not), then tries to read the whole screen (4 if it could): 0 = untrusted as it must be. */
const GRAB_APP = { id: 'grab', name: 'Grab', exec: 'sh -c "xdpyinfo >/dev/null || exit 3; if xwd -root -silent -out /dev/null; then exit 4; fi; exit 0"' };

let x: Xvfb;
let host: WebDaemon;
let person: WebDaemon;
let browser: Browser | undefined;
let page: Page;

before(async () => {
  if (SKIP !== false) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  await setupOnce();
  // The sandbox user passes through the test's temporary folder to bind its display folder.
  chmodSync(tempRoot(), 0o711);
  x = await startXvfb();
  [host, person] = await Promise.all([
    startWebDaemon('dxa', { name: 'alpha', policy: 'trusted-only', apps: [{ id: 'xeyes', name: 'Eyes', exec: `xeyes -title ${EYES}` }, { id: 'sh', name: 'Shell', exec: 'sh', terminal: true }, GRAB_APP] }),
    startWebDaemon('dxb', { name: 'beta', apps: [] }, x.env),
  ]);
  await trustClient(host, person.stateDir);
  await ebpOk(person.stateDir, ['peers', 'add', host.endpoint]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  page = await context.newPage();
  await page.goto(person.loginUrl);
  await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
});

after(async () => {
  await browser?.close();
  await poolCleanup();
  if (SKIP === false) await x.stop();
});

describe('GUI apps on the daemon\'s own desktop', { skip: SKIP }, () => {
  test('"Open on this desktop": xeyes shows on the daemon\'s display; Stop in the page takes it away', { timeout: 120_000 }, async () => {
    const alpha = page.locator('section.peer[data-peer="alpha"]');
    const open = alpha.getByRole('button', { name: 'Open Eyes of alpha on this desktop' });
    await open.waitFor({ timeout: 30_000 });
    assert.equal(await alpha.getByRole('button', { name: 'Open Eyes of alpha in the page' }).count(), 1, 'the page way next to it');
    assert.equal(await alpha.getByRole('button', { name: 'Open Shell of alpha on this desktop' }).count(), 0, 'a terminal app has no desktop way');
    assert.match(await page.locator('#desktop-title').innerText(), new RegExp(`On this desktop \\(${x.display}\\)`));

    await open.click();
    const row = page.locator('#desktop li[data-app="xeyes"]');
    await row.and(page.locator('[data-state="running"]')).waitFor({ timeout: 30_000 });
    const window = await waitUntil(async () => (await windowsNamed(x, EYES))[0], 30_000, `a window named ${EYES} on ${x.display}`, 100);
    const size = await waitUntil(async () => {
      const found = await geometry(x, window);
      return found.width > 20 && found.height > 20 ? found : undefined;
    }, 10_000, 'a real window', 100);
    // xeyes draws its eyes: the window's pixels are lit on a black root (-br).
    const lit = await waitUntil(async () => {
      const shot = await screenshot(x);
      let count = 0;
      for (let py = size.y; py < size.y + size.height && py < shot.height; py += 1) {
        for (let px = size.x; px < size.x + size.width && px < shot.width; px += 1) if (shot.pixel(px, py) !== 0) count += 1;
      }
      return count > (size.width * size.height) / 10 ? count : undefined;
    }, 10_000, 'xeyes drawn on the display', 200);
    assert.ok(lit > 0);
    assert.equal((await sessionsOf(host)).filter((session) => session.app === 'xeyes').length, 1, 'one session on the host');
    await page.screenshot({ path: join(ARTIFACTS, '20-desktop-running.png'), fullPage: true });

    await row.getByRole('button', { name: 'Stop xeyes of alpha on this desktop' }).click();
    await waitUntil(async () => (await windowsNamed(x, EYES)).length === 0 || undefined, 15_000, 'the window gone');
    await row.and(page.locator('[data-state="ended"]')).waitFor({ timeout: 15_000 });
    assert.match(await row.innerText(), /stopped/);
    await waitUntil(async () => (await sessionsOf(host)).length === 0 || undefined, 15_000, 'the host session ended');
    await page.screenshot({ path: join(ARTIFACTS, '21-desktop-stopped.png'), fullPage: true });
    await row.getByRole('button', { name: /^Dismiss xeyes/ }).click();
    await row.waitFor({ state: 'detached', timeout: 10_000 });
  });

  test('on a peer whose owner is asked: the row says so until the owner allows it, then the window opens', { timeout: 90_000 }, async () => {
    const asking = await startWebDaemon('dxc', { name: 'gamma', policy: 'ask', timeout: '60s', apps: [{ id: 'xeyes', name: 'Eyes', exec: `xeyes -title ${EYES}-gamma` }] });
    await ebpOk(person.stateDir, ['peers', 'add', asking.endpoint]);
    const open = page.locator('section.peer[data-peer="gamma"]').getByRole('button', { name: 'Open Eyes of gamma on this desktop' });
    await open.waitFor({ timeout: 30_000 });
    await open.click();
    const row = page.locator('#desktop li[data-app="xeyes"]').filter({ hasText: 'gamma' });
    await row.and(page.locator('[data-state="waiting"]')).waitFor({ timeout: 20_000 });
    assert.match(await row.innerText(), /waiting for the owner of gamma to allow it/);
    assert.deepEqual(await windowsNamed(x, `${EYES}-gamma`), [], 'no window before the owner allows it');
    await page.screenshot({ path: join(ARTIFACTS, '22-desktop-waiting.png'), fullPage: true });
    const request = await waitForRequest(asking, person.fingerprint);
    await ebpOk(asking.stateDir, ['allow', request.id]);
    await row.and(page.locator('[data-state="running"]')).waitFor({ timeout: 30_000 });
    await waitUntil(async () => (await windowsNamed(x, `${EYES}-gamma`))[0], 30_000, 'gamma\'s window on the display', 100);
    await row.getByRole('button', { name: 'Stop xeyes of gamma on this desktop' }).click();
    await row.and(page.locator('[data-state="ended"]')).waitFor({ timeout: 15_000 });
    await waitUntil(async () => (await windowsNamed(x, `${EYES}-gamma`)).length === 0 || undefined, 15_000, 'the window gone');
    await row.getByRole('button', { name: /^Dismiss xeyes/ }).click();
    await row.waitFor({ state: 'detached', timeout: 10_000 });
  });

  test('the app gets an untrusted cookie: it reaches the display but cannot read the screen', { timeout: 60_000 }, async () => {
    await page.locator('section.peer[data-peer="alpha"]').getByRole('button', { name: 'Open Grab of alpha on this desktop' }).click();
    const row = page.locator('#desktop li[data-app="grab"]');
    await row.and(page.locator('[data-state="ended"]')).waitFor({ timeout: 30_000 });
    assert.match(await row.innerText(), /ended with status 0\b/, 'status 3: no display; status 4: the screen was read');
    await row.getByRole('button', { name: /^Dismiss grab/ }).click();
    await row.waitFor({ state: 'detached', timeout: 10_000 });
  });

  test('a daemon without a display offers no desktop way and refuses the launch', { timeout: 30_000 }, async () => {
    const headers = { Cookie: host.cookie, Origin: host.origin, 'Content-Type': 'application/json' };
    const view = JSON.parse((await raw(host.uiPort, { path: '/api/desktop', headers: { Cookie: host.cookie } })).body) as { display?: string };
    assert.equal(view.display, undefined);
    const refused = await raw(host.uiPort, { method: 'POST', path: '/api/desktop', headers, body: JSON.stringify({ peer: host.endpoint, app: 'xeyes' }) });
    assert.equal(refused.status, 502);
    assert.match(refused.body, /DISPLAY_UNAVAILABLE.*no display/);
  });

  test('the launch route has the page\'s guards: token, Host, Origin; hostile fields are refused', { timeout: 30_000 }, async () => {
    const body = JSON.stringify({ peer: host.endpoint, app: 'xeyes' });
    const json = { 'Content-Type': 'application/json' };
    const attempts: [string, Record<string, string>, number][] = [
      ['no token', { ...json, Origin: person.origin }, 401],
      ['another site', { ...json, Cookie: person.cookie, Origin: 'http://evil.example' }, 403],
      ['no Origin', { ...json, Cookie: person.cookie }, 403],
      ['DNS rebinding', { ...json, Cookie: person.cookie, Origin: person.origin, Host: `evil.example:${person.uiPort}` }, 421],
    ];
    for (const [what, headers, status] of attempts) {
      const answer = await raw(person.uiPort, { method: 'POST', path: '/api/desktop', headers, body });
      assert.equal(answer.status, status, what);
    }
    const good = { ...json, Cookie: person.cookie, Origin: person.origin };
    for (const fields of [{ peer: host.endpoint, app: '../../bin/sh' }, { peer: host.endpoint, app: 'xeyes; id' }, { peer: 'a\nb', app: 'xeyes' }, { peer: host.endpoint }]) {
      const answer = await raw(person.uiPort, { method: 'POST', path: '/api/desktop', headers: good, body: JSON.stringify(fields) });
      assert.equal(answer.status, 400, JSON.stringify(fields));
    }
    assert.equal((await raw(person.uiPort, { method: 'POST', path: '/api/desktop/0123abcd/stop', headers: good, body: '{}' })).status, 404);
    // Nothing was launched by any of these.
    assert.deepEqual(await windowsNamed(x, EYES), []);
    assert.deepEqual(await sessionsOf(host), []);
  });
});
