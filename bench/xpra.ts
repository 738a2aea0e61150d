// Anchor for the web bench: Xpra's HTML5 client (Debian's `xpra` 3.1.3, which ships it in
// /usr/share/xpra/www) in the same Chromium, against an Xpra server on loopback only. Measured
// the way bench/web.ts measures the page (in the page, every animation frame, a canvas counts as
// drawn once it shows more than two colours):
// - navigation → first frame: the HTML5 client loading and connecting to a session where xclock
//   already runs, until xclock's canvas is drawn (the viewer's whole start);
// - launch → first frame: with the client connected, xclock started on the Xpra display until its
//   canvas is drawn (the app's start and the first paint through Xpra);
// - key event → echo on screen: a key typed into an xterm running `cat` (the pty echoes, as in the
//   page's terminal figures) until the xterm's canvas changes.
// The Xpra server has its own Xvfb with a private cookie (-auth), TCP for X off; its web socket
// listens on 127.0.0.1 only, takes only a client with the session's password (from a private
// file; an HMAC challenge, the password never crosses) and lives only for the bench.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Browser, Page } from 'playwright-core';
import { summarize, type Summary } from './stats.js';

const XPRA = '/usr/bin/xpra';
const HTML5 = '/usr/share/xpra/www/index.html';
/** The client without sound, clipboard, printing, file transfer or reconnection. */
const CLIENT_QUERY = 'sound=false&clipboard=false&printing=false&file_transfer=false&remote_logging=false&reconnect=false&floating_menu=false';

export interface XpraResult {
  readonly version: string;
  readonly navigateToFrameMs: Summary;
  readonly launchToFrameMs: Summary;
  readonly keyToScreenUs: Summary;
}

export type XpraOutcome = { readonly kind: 'measured'; readonly result: XpraResult } | { readonly kind: 'unavailable'; readonly reason: string };

function log(text: string): void {
  process.stderr.write(`[bench web/xpra] ${text}\n`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => { resolve(port); });
    });
  });
}

function freeDisplay(): number {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const n = 400 + Math.floor(Math.random() * 500);
    if (!existsSync(`/tmp/.X11-unix/X${n}`) && !existsSync(`/tmp/.X${n}-lock`)) return n;
  }
  throw new Error('no free X display number');
}

/** In the page: the canvas of the Xpra window whose title contains TITLE, once it shows COLOURS colours (default 3). */
const LIT_CANVAS = `(title, colours = 3) => {
  const win = [...document.querySelectorAll('#screen div.window')].find((div) => (div.querySelector('.windowtitle')?.textContent ?? '').includes(title));
  const canvas = win === undefined ? null : win.querySelector('canvas');
  if (canvas === null || canvas.width < 20) return null;
  const data = canvas.getContext('2d').getImageData(0, 0, Math.min(canvas.width, 400), Math.min(canvas.height, 400)).data;
  const seen = new Set();
  for (let i = 0; i < data.length && seen.size < colours; i += 20) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return seen.size >= colours ? canvas : null;
}`;

/** Init script: from navigation start, the time (performance.now) xclock's canvas is first drawn. */
const FIRST_FRAME_PROBE = `
  window.__litCanvas = ${LIT_CANVAS};
  window.__firstFrame = new Promise((resolve, reject) => {
    const tick = () => {
      if (document.getElementById('screen') !== null && window.__litCanvas('xclock') !== null) resolve(performance.now());
      else if (performance.now() > 30000) reject(new Error('no xclock frame in 30 s'));
      else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
`;

/** In the page: wait (every frame) until a window titled TITLE is drawn (or gone), resolves with Date.now(). */
const WAIT_WINDOW = `(async ({ title, present, timeoutMs, colours }) => {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if ((window.__litCanvas(title, colours) !== null) === present) { resolve(Date.now()); return; }
      if (performance.now() - start > timeoutMs) reject(new Error((present ? 'no window ' : 'still a window ') + title));
      else requestAnimationFrame(tick);
    };
    tick();
  });
})`;

/** In the page: arms a probe; after the next keydown, µs until the xterm's canvas changes. */
const KEY_PROBE = `(({ title }) => {
  const canvas = window.__litCanvas(title, 1);
  if (canvas === null) throw new Error('no xterm canvas');
  const context = canvas.getContext('2d');
  const snapshot = () => {
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let hash = 0;
    for (let i = 0; i < data.length; i += 4) hash = (Math.imul(hash, 31) + data[i] + (data[i + 1] << 8) + (data[i + 2] << 16)) | 0;
    return hash;
  };
  const before = snapshot();
  window.__keyEcho = new Promise((resolve, reject) => {
    const onKey = () => {
      const start = performance.now();
      const tick = () => {
        if (snapshot() !== before) { resolve((performance.now() - start) * 1000); return; }
        if (performance.now() - start > 10000) reject(new Error('no echo'));
        else requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    };
    window.addEventListener('keydown', onKey, { capture: true, once: true });
  });
})`;

interface Session {
  readonly display: string;
  readonly url: string;
  readonly env: NodeJS.ProcessEnv;
  readonly version: string;
  stop(): Promise<void>;
}

async function startXpra(): Promise<Session> {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-xpra-'));
  const number = freeDisplay();
  const display = `:${number}`;
  const port = await freePort();
  // Xpra adds its cookie to XAUTHORITY only when that file exists (else to ~/.Xauthority).
  const authFile = join(dir, 'Xauthority');
  writeFileSync(authFile, '', { mode: 0o600 });
  const env: NodeJS.ProcessEnv = { ...process.env, XAUTHORITY: authFile, XPRA_SOCKET_DIR: dir, HOME: dir };
  // The session takes only our client: a password from a private file (HMAC challenge, never sent).
  const password = randomBytes(18).toString('base64url');
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, password, { mode: 0o600 });
  delete env['DISPLAY'];
  const args = [
    'start', display, `--bind-tcp=127.0.0.1:${port}`, `--tcp-auth=file:filename=${passwordFile}`, '--html=on', '--daemon=no', '--exit-with-children=no',
    `--socket-dirs=${dir}`, '--start=', '--mdns=no', '--pulseaudio=no', '--notifications=no', '--webcam=no', '--speaker=off', '--microphone=off',
    '--printing=no', '--file-transfer=no', '--clipboard=no', '--dbus-proxy=no', '--dbus-launch=', '--systemd-run=no', '--xsettings=no',
    // Its own X server: a private cookie, no X over TCP.
    '--xvfb=Xvfb +extension Composite -screen 0 1280x1024x24+32 -dpi 96 -nolisten tcp -noreset -auth $XAUTHORITY',
  ];
  const child: ChildProcess = spawn(XPRA, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const exited = new Promise<void>((resolve) => { child.once('close', () => { resolve(); }); });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      const timer = setTimeout(() => { try { process.kill(-(child.pid ?? 0), 'SIGKILL'); } catch { /* gone */ } }, 5000);
      await exited;
      clearTimeout(timer);
    }
    // Xpra keeps its X server on SIGTERM (to reconnect later): it goes too.
    try {
      const pid = Number(readFileSync(`/tmp/.X${number}-lock`, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 1) process.kill(pid, 'SIGTERM');
    } catch { /* none */ }
    for (let i = 0; i < 50 && existsSync(`/tmp/.X${number}-lock`); i += 1) await delay(100);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = performance.now() + 60_000;
  while (!output.includes('xpra is ready')) {
    if (child.exitCode !== null || performance.now() > deadline) {
      await stop();
      throw new Error(`xpra did not start: ${output.trim().split('\n').slice(-3).join(' / ')}`);
    }
    await delay(100);
  }
  const version = /xpra .*version (\d+\.\d+(\.\d+)?)/i.exec(output)?.[1] ?? 'unknown';
  return { display, url: `http://127.0.0.1:${port}/index.html?${CLIENT_QUERY}&password=${password}`, env: { ...env, DISPLAY: display }, version, stop };
}

/** Starts an X client on the Xpra display. */
function xclient(session: Session, argv: readonly string[]): ChildProcess {
  const child = spawn(argv[0] ?? '', argv.slice(1), { env: session.env, stdio: 'ignore' });
  child.on('error', () => undefined);
  return child;
}

async function ended(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => { child.once('close', () => { resolve(); }); });
  child.kill('SIGTERM');
  await done;
}

async function waitWindow(page: Page, title: string, present: boolean, colours = 3, timeoutMs = 20_000): Promise<number> {
  return page.evaluate<number>(`${WAIT_WINDOW}(${JSON.stringify({ title, present, timeoutMs, colours })})`);
}

export async function benchXpra(browser: Browser, options: { frames: number; keys: number }): Promise<XpraOutcome> {
  if (!existsSync(XPRA)) return { kind: 'unavailable', reason: `${XPRA} is not installed (Debian's xpra)` };
  if (!existsSync(HTML5)) return { kind: 'unavailable', reason: `xpra's HTML5 client is missing (${HTML5})` };
  let session: Session;
  try {
    session = await startXpra();
  } catch (error) {
    return { kind: 'unavailable', reason: error instanceof Error ? error.message : String(error) };
  }
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const children: ChildProcess[] = [];
  try {
    await context.addInitScript(FIRST_FRAME_PROBE);
    log(`xpra ${session.version} on ${session.display}; 1. navigation → first frame of a running xclock, ${options.frames} times`);
    const clock = xclient(session, ['xclock', '-update', '1']);
    children.push(clock);
    const navigate: number[] = [];
    for (let i = 0; i < options.frames + 1; i += 1) {
      const page = await context.newPage();
      await page.goto(session.url, { waitUntil: 'commit' });
      const ms = await page.evaluate<number>('window.__firstFrame');
      if (i > 0) navigate.push(ms); // the first one warms the server's encoders
      await page.close();
    }
    await ended(clock);

    log(`2. launch → first frame of xclock in the connected client, ${options.frames} launches`);
    const page = await context.newPage();
    await page.goto(session.url);
    await page.waitForFunction('document.querySelector("#progress") === null || getComputedStyle(document.querySelector("#progress")).display === "none"', undefined, { timeout: 20_000 }).catch(() => undefined);
    await delay(500);
    const launch: number[] = [];
    for (let i = 0; i < options.frames; i += 1) {
      const shown = waitWindow(page, 'xclock', true);
      const start = Date.now();
      const app = xclient(session, ['xclock', '-update', '1']);
      children.push(app);
      launch.push((await shown) - start);
      await ended(app);
      await waitWindow(page, 'xclock', false);
    }

    const keys = Math.min(options.keys, 120);
    log(`3. key event → echo on screen in an xterm running cat, ${keys} keystrokes`);
    const title = `ebpbench${process.pid}`;
    children.push(xclient(session, ['xterm', '-title', title, '-geometry', '70x10+0+0', '-e', 'cat']));
    // A blank xterm running cat: white with a black cursor.
    await waitWindow(page, title, true, 2);
    await page.locator('#screen div.window', { hasText: title }).locator('canvas').click({ position: { x: 40, y: 40 } });
    await delay(500);
    const echo: number[] = [];
    let column = 0;
    for (let i = 0; i < keys + 10; i += 1) {
      if (column >= 60) {
        await page.keyboard.press('Enter');
        await delay(300);
        column = 0;
      }
      await page.evaluate(`${KEY_PROBE}(${JSON.stringify({ title })})`);
      await page.keyboard.press(String.fromCharCode(97 + (i % 26)));
      const us = await page.evaluate<number>('window.__keyEcho');
      column += 1;
      if (i >= 10) echo.push(us);
      // Xpra may repaint the region losslessly a moment later: let it settle before the next key.
      await delay(120);
    }
    return {
      kind: 'measured',
      result: { version: session.version, navigateToFrameMs: summarize(navigate), launchToFrameMs: summarize(launch), keyToScreenUs: summarize(echo) },
    };
  } catch (error) {
    return { kind: 'unavailable', reason: `xpra run failed: ${error instanceof Error ? error.message : String(error)}` };
  } finally {
    await context.close();
    for (const child of children) await ended(child);
    await session.stop();
  }
}
