// The web page in a real browser (Debian's Chromium driven by playwright-core) against two real
// daemons on 127.0.0.1: the person's page lists the pool and searches it; a terminal app on the
// other peer asks that peer's owner, whose page shows the request live; Allow starts it, the
// person types into xterm.js and reads the output back; the owner's Stop ends it. Screenshots of
// each step go to EBP_ARTIFACTS (default: a folder under the system temp dir), never the repo.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import { ebpOk, poolCleanup, sessionsOf, STANDARD_APPS, trustClient, waitUntil } from './helpers/pool.js';
import { startWebDaemon, type WebDaemon } from './helpers/web.js';

const CHROMIUM = '/usr/bin/chromium';
const SKIP = !IS_ROOT ? 'needs root (sandboxes run as the ebp-sandbox user)' : !existsSync(CHROMIUM) ? `needs ${CHROMIUM}` : false;
const ARTIFACTS = process.env['EBP_ARTIFACTS'] ?? join(tmpdir(), 'ebp-web-artifacts');

/** xterm showing CLIPWORD on its first line, then "got" + each line it reads (for the clipboard test). */
const CLIP_APP = { id: 'clipterm', name: 'Clip terminal', exec: 'xterm -geometry 60x8+0+0 -e sh -c "echo CLIPWORD; while read l; do echo got\\$l; done"' };

let host: WebDaemon;
let person: WebDaemon;
let browser: Browser | undefined;
let hostPage: Page;
let personPage: Page;

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function openPage(daemon: WebDaemon): Promise<Page> {
  if (browser === undefined) throw new Error('no browser');
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => { problems.push(error.message); });
  await page.goto(daemon.loginUrl);
  assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
  await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
  assert.deepEqual(problems, [], 'no script error and no CSP violation');
  return page;
}

before(async () => {
  if (SKIP !== false) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  await setupOnce();
  [host, person] = await Promise.all([
    startWebDaemon('wa', { name: 'alpha', policy: 'ask', timeout: '60s', apps: [...STANDARD_APPS, { id: 'xclock', name: 'Clock', exec: 'xclock -update 1' }, CLIP_APP] }),
    startWebDaemon('wb', { name: 'beta', policy: 'ask', apps: [{ id: 'cat', name: 'Cat', exec: 'cat' }] }),
  ]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  [hostPage, personPage] = await Promise.all([openPage(host), openPage(person)]);
  // After the pages are open: alpha must arrive in beta's page live.
  await ebpOk(person.stateDir, ['peers', 'add', host.endpoint]);
});

after(async () => {
  await browser?.close();
  await poolCleanup();
});

describe('the pool in the browser', { skip: SKIP }, () => {
  test('the page lists every peer with its apps (one arriving live), and search filters them', { timeout: 60_000 }, async () => {
    const alpha = personPage.locator('section.peer[data-peer="alpha"]');
    await alpha.waitFor({ timeout: 20_000 });
    await alpha.getByRole('button', { name: 'Run Shell on alpha' }).waitFor({ timeout: 20_000 });
    const beta = personPage.locator('section.peer[data-peer="beta"]');
    assert.match(await beta.innerText(), /this machine/);
    assert.equal(await beta.getByRole('button', { name: 'Run Cat on beta' }).count(), 1);
    assert.ok(await alpha.locator('button.app').count() >= 5, 'alpha shares the test apps');
    // A peer's icon comes over SSH (ebp:icon) through beta: it loads as an image.
    const icon = alpha.getByRole('button', { name: 'Run Chromium Web Browser on alpha' }).locator('img.icon');
    await icon.scrollIntoViewIfNeeded();
    await waitUntil(async () => (await icon.evaluate((node) => (node as unknown as { naturalWidth: number }).naturalWidth)) > 0 || undefined, 15_000, 'alpha\'s Chromium icon');
    await shot(personPage, '01-pool');

    await personPage.getByLabel('Search the pool').fill('shell');
    await personPage.getByRole('button', { name: 'Run Cat on beta' }).waitFor({ state: 'detached' });
    assert.equal(await personPage.locator('button.app').count(), 1);
    assert.equal(await personPage.locator('section.peer[data-peer="beta"]').count(), 0, 'a peer without a match is hidden');
    await shot(personPage, '02-search');
    await personPage.getByLabel('Search the pool').fill('no such app anywhere');
    await personPage.getByText('No app matches.').waitFor();
    await personPage.getByLabel('Search the pool').fill('');
    await personPage.getByRole('button', { name: 'Run Cat on beta' }).waitFor();
  });

  test('a terminal app: the owner allows it live, the person types and reads, the owner stops it', { timeout: 90_000 }, async () => {
    await personPage.getByRole('button', { name: 'Run Shell on alpha' }).click();
    const window = personPage.locator('section.window[data-app="sh"]');
    await window.waitFor();

    // The request pops up on the host's page without a reload.
    const approval = hostPage.getByRole('alertdialog', { name: 'Launch request from beta' });
    await approval.waitFor({ timeout: 15_000 });
    assert.match(await approval.innerText(), /beta \(SHA256:.+\) wants to run Shell/);
    await shot(hostPage, '03-approval');
    await approval.getByRole('button', { name: 'Allow once' }).click();
    await approval.waitFor({ state: 'detached' });

    await window.locator('.status', { hasText: 'running' }).waitFor({ timeout: 15_000 });
    await window.locator('.xterm').click();
    await personPage.keyboard.type('echo "web$((6*7))"\n');
    const rows = window.locator('.xterm-rows');
    await waitUntil(async () => (await rows.innerText()).includes('web42'), 15_000, 'the echo in the terminal');
    await shot(personPage, '04-terminal');

    // Resizing the page resizes the terminal on the peer (SSH window-change to its pty).
    const size = async (marker: string): Promise<[number, number]> => {
      await personPage.keyboard.type(`echo ${marker} $(stty size)\n`);
      const match = await waitUntil(async () => new RegExp(`^${marker} (\\d+) (\\d+)$`, 'm').exec(await rows.innerText()) ?? undefined, 15_000, `stty size (${marker})`);
      return [Number(match[1]), Number(match[2])];
    };
    const [rowsBefore, colsBefore] = await size('wide');
    await personPage.setViewportSize({ width: 640, height: 800 });
    await waitUntil(async () => {
      const [, cols] = await size(`narrow${Date.now() % 1000}`);
      return cols < colsBefore - 10 ? cols : undefined;
    }, 20_000, `fewer columns than ${colsBefore} after the page got narrower`);
    assert.ok(rowsBefore > 5);
    await shot(personPage, '04b-terminal-narrow');
    await personPage.setViewportSize({ width: 1100, height: 800 });

    // The owner sees the session with its resources and stops it.
    const row = hostPage.locator('tr[data-session]').filter({ hasText: 'sh' });
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.innerText(), /beta/);
    await shot(hostPage, '05-sessions');
    await row.getByRole('button', { name: /^Stop sh/ }).click();
    await row.waitFor({ state: 'detached', timeout: 15_000 });
    await window.locator('.status', { hasText: /ended/ }).waitFor({ timeout: 15_000 });
    assert.deepEqual(await sessionsOf(host), []);
    await shot(personPage, '06-stopped');
  });

  test('a GUI app on its own display in the page: the noVNC canvas shows it', { timeout: 90_000 }, async () => {
    await personPage.getByRole('button', { name: 'Run Clock on alpha' }).click();
    const window = personPage.locator('section.window[data-app="xclock"]');
    await window.waitFor();
    const approval = hostPage.getByRole('alertdialog', { name: 'Launch request from beta' });
    await approval.waitFor({ timeout: 15_000 });
    assert.match(await approval.innerText(), /wants to run Clock/);
    await approval.getByRole('button', { name: 'Allow once' }).click();
    await window.locator('.status', { hasText: 'running' }).waitFor({ timeout: 20_000 });
    const canvas = window.locator('.vnc canvas');
    await canvas.waitFor();
    // The clock's face: many distinct colours on the canvas once it has drawn.
    // (Runs in the page: typed structurally, the test build has no DOM library.)
    interface Canvas2d { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null }
    const colours = async (): Promise<number> => canvas.evaluate((node) => {
      const element = node as unknown as Canvas2d;
      const context = element.getContext('2d');
      if (context === null || element.width === 0) return 0;
      const data = context.getImageData(0, 0, element.width, element.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < data.length; i += 4 * 7) seen.add(((data[i] ?? 0) << 16) | ((data[i + 1] ?? 0) << 8) | (data[i + 2] ?? 0));
      return seen.size;
    });
    await waitUntil(async () => (await colours()) > 2, 20_000, 'the clock drawn on the canvas');
    await canvas.screenshot({ path: join(ARTIFACTS, '07-xclock-canvas.png') });
    await shot(personPage, '07-xclock');

    // The view's size is the display's: a narrower page resizes the remote display (SetDesktopSize).
    const width = async (): Promise<number> => canvas.evaluate((node) => (node as unknown as { width: number }).width);
    const wide = await width();
    await personPage.setViewportSize({ width: 700, height: 800 });
    const narrow = await waitUntil(async () => { const now = await width(); return now < wide - 100 ? now : undefined; }, 20_000, `the display narrower than ${wide} px`);
    assert.ok(narrow > 300, `${narrow} px`);
    await shot(personPage, '07b-xclock-narrow');
    await personPage.setViewportSize({ width: 1100, height: 800 });
    const session = hostPage.locator('tr[data-session]').filter({ hasText: 'xclock' });
    await session.waitFor({ timeout: 10_000 });
    await window.getByRole('button', { name: 'Close Clock' }).click();
    await session.waitFor({ state: 'detached', timeout: 15_000 });
  });

  test('the display\'s clipboard goes both ways (xterm: select to copy, Shift+Insert to paste)', { timeout: 90_000, skip: existsSync('/usr/bin/xterm') ? false : 'needs xterm' }, async () => {
    await trustClient(host, person.stateDir);
    try {
      await personPage.getByRole('button', { name: 'Run Clip terminal on alpha' }).click();
      const window = personPage.locator('section.window[data-app="clipterm"]');
      await window.locator('.status', { hasText: 'running' }).waitFor({ timeout: 20_000 });
      const canvas = window.locator('.vnc canvas');
      const clipboard = window.getByLabel('Clipboard');
      // xterm's default font is 6x13 pixels: line N (from 1) is around y = 13 * N - 5.
      const lineY = (line: number): number => 13 * line - 5;
      // One double-click per try, then time for the selection to travel to the page; the pause
      // before the next try is longer than xterm's multi-click time, so clicks never pile up
      // into line or page selections.
      const selectWord = async (line: number, word: string, what: string): Promise<void> => {
        await waitUntil(async () => {
          await canvas.dblclick({ position: { x: 20, y: lineY(line) } });
          for (let waited = 0; waited < 1500; waited += 100) {
            if ((await clipboard.inputValue()) === word) return true;
            await personPage.waitForTimeout(100);
          }
          await canvas.click({ position: { x: 300, y: lineY(7) } });
          await personPage.waitForTimeout(500);
          return undefined;
        }, 25_000, what);
      };
      await selectWord(1, 'CLIPWORD', 'CLIPWORD selected in xterm arriving in the page\'s clipboard box');
      await shot(personPage, '11-clipboard-from-app');

      await clipboard.fill('pasted42');
      await window.getByRole('button', { name: 'Paste into the app' }).click();
      await canvas.hover({ position: { x: 100, y: lineY(4) } });
      await personPage.keyboard.press('Shift+Insert');
      await personPage.keyboard.press('Enter');
      await selectWord(3, 'gotpasted42', 'the pasted text read by the app and selected back');
      await shot(personPage, '12-clipboard-both-ways');
      await window.getByRole('button', { name: 'Close Clip terminal' }).click();
    } finally {
      // A failure here must not leave beta trusted: the next tests expect the owner to be asked.
      await ebpOk(host.stateDir, ['untrust', person.fingerprint]);
    }
    await waitUntil(async () => (await sessionsOf(host)).length === 0 || undefined, 15_000, 'the session to end');
  });

  test('keyboard only, on a phone-sized screen: search, run an app with Enter; the owner denies it', { timeout: 60_000 }, async () => {
    await personPage.setViewportSize({ width: 390, height: 800 });
    await personPage.locator('body').click({ position: { x: 1, y: 1 } });
    await personPage.keyboard.press('/');
    assert.equal(await personPage.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document.activeElement?.id), 'search', '"/" goes to the search box');
    await personPage.keyboard.type('argv');
    await personPage.getByRole('button', { name: 'Run Shell on alpha' }).waitFor({ state: 'detached' });
    await personPage.keyboard.press('Tab');
    const focused = await personPage.evaluate(() => (globalThis as unknown as { document: { activeElement: { getAttribute(name: string): string | null } | null } }).document.activeElement?.getAttribute('aria-label'));
    assert.equal(focused, 'Run Argv on alpha');
    await shot(personPage, '08-phone-search');
    const wide = await personPage.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `no sideways scrolling on a phone (${wide} px)`);

    // Enter runs it; the owner denies, and the person's window says so.
    await personPage.keyboard.press('Enter');
    const window = personPage.locator('section.window[data-app="argv"]');
    await window.waitFor();
    const approval = hostPage.getByRole('alertdialog', { name: 'Launch request from beta' });
    await approval.waitFor({ timeout: 15_000 });
    await approval.getByRole('button', { name: 'Deny' }).click();
    await window.locator('.status', { hasText: /ended with status 1: .*denied/ }).waitFor({ timeout: 15_000 });
    await shot(personPage, '09-phone-denied');
    await window.getByRole('button', { name: 'Close Argv' }).click();
    await personPage.getByLabel('Search the pool').fill('');
    await personPage.setViewportSize({ width: 1100, height: 800 });
  });

  test('Always trusts the key (shown under trusted peers); paste goes into the terminal; Untrust removes the key', { timeout: 90_000 }, async () => {
    await personPage.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: person.origin });
    await personPage.getByRole('button', { name: 'Run Shell on alpha' }).click();
    const approval = hostPage.getByRole('alertdialog', { name: 'Launch request from beta' });
    await approval.waitFor({ timeout: 15_000 });
    await approval.getByRole('button', { name: 'Always' }).click();
    const trusted = hostPage.locator('#trusted li', { hasText: 'beta' });
    await trusted.waitFor({ timeout: 10_000 });
    assert.match(await trusted.innerText(), new RegExp(`SHA256:${person.fingerprint.slice(7, 15).replace(/[+/]/g, '\\$&')}`));
    await shot(hostPage, '10-trusted');

    const window = personPage.locator('section.window[data-app="sh"]').last();
    await window.locator('.status', { hasText: 'running' }).waitFor({ timeout: 15_000 });
    await window.locator('.xterm').click();
    await personPage.evaluate(async () => {
      await (globalThis as unknown as { navigator: { clipboard: { writeText(text: string): Promise<void> } } }).navigator.clipboard.writeText('echo pasted$((2+3))\n');
    });
    await personPage.keyboard.press('Control+Shift+V');
    const rows = window.locator('.xterm-rows');
    await waitUntil(async () => /^pasted5$/m.test(await rows.innerText()), 15_000, 'the pasted command\'s output');
    await window.getByRole('button', { name: 'Close Shell' }).click();

    await trusted.getByRole('button', { name: 'Untrust beta' }).click();
    await trusted.waitFor({ state: 'detached', timeout: 10_000 });
    const keys = JSON.parse((await ebpOk(host.stateDir, ['trusted', '--json'])).stdout) as { fingerprint: string }[];
    assert.ok(!keys.some((key) => key.fingerprint === person.fingerprint), 'untrusted for real');
    await waitUntil(async () => (await sessionsOf(host)).length === 0 || undefined, 15_000, 'the closed window\'s session to end');
  });

  test('the owner switches an app off and the person\'s pool loses it', { timeout: 60_000 }, async () => {
    await hostPage.getByLabel('Echo', { exact: true }).uncheck();
    await personPage.getByRole('button', { name: 'Run Echo on alpha' }).waitFor({ state: 'detached', timeout: 30_000 });
    await hostPage.getByLabel('Echo', { exact: true }).check();
    await personPage.getByRole('button', { name: 'Run Echo on alpha' }).waitFor({ timeout: 30_000 });
  });

  test('a peer that goes away is shown as gone, live', { timeout: 60_000 }, async () => {
    await host.stop();
    // A static peer that does not answer is known by its address only.
    const gone = personPage.locator(`section.peer[data-peer="${host.endpoint}"]`);
    await gone.locator('.badge', { hasText: 'unreachable' }).waitFor({ timeout: 40_000 });
    assert.equal(await gone.locator('button.app').count(), 0, 'no app of a peer that is gone');
    assert.equal(await personPage.locator('section.peer[data-peer="alpha"]').count(), 0);
    await shot(personPage, '13-peer-gone');
  });
});
