// Benchmark: apps in the web page (Debian's Chromium driven by playwright-core), as root.
//
// Two daemons on 127.0.0.1: alpha shares the apps, beta is the person's daemon whose page runs
// them (alpha trusts beta's key, so no approval waits).
// 1. Click-to-first-frame of xclock in the page: from the button's click (in the page) until the
//    noVNC canvas shows the clock (more than two colours), sampled every animation frame; also
//    the moment the viewer finished the RFB handshake. Anchor: Xpra's HTML5 client in the same
//    Chromium (bench/xpra.ts; Debian's xpra 3.1.3, loopback only): xclock launched into a
//    connected client until its canvas is drawn, and the client's navigation to a running xclock.
// 2. Keystroke-to-echo in the page's terminal (xterm.js → WebSocket → beta → SSH → alpha → pty
//    → back), measured in the page from the WebSocket send of the key to the arrival of its echo,
//    and from the key event to the echo on screen (xterm's render). Anchor: `ssh -tt` (OpenSSH)
//    into alpha's SSH server running `cat`, by bench/pty-echo.py (the same method as the launch
//    benchmark: the remote pty's line discipline echoes), plus `ebp run` through beta; and Xpra:
//    a key typed into an xterm running cat shown by Xpra's HTML5 client, until its canvas changes.
//
//   node dist/bench/web.js [--quick]
// Figures on stdout (Markdown) and in bench/results/web.json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { ebpOk, poolCleanup, STANDARD_APPS, tempDir, waitUntil } from '../test/integration/helpers/pool.js';
import { EBP } from '../test/integration/helpers/ebp.js';
import { startWebDaemon } from '../test/integration/helpers/web.js';
import { round, summarize, type Summary } from './stats.js';
import { benchXpra, type XpraOutcome } from './xpra.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = '/usr/bin/chromium';

export interface WebBenchResult {
  readonly firstFrameMs: Summary;
  readonly handshakeMs: Summary;
  readonly echo: {
    readonly pageWireUs: Summary;
    readonly pageScreenUs: Summary;
    readonly sshUs: Summary | undefined;
    readonly ebpRunUs: Summary | undefined;
    readonly problem: string | undefined;
  };
  /** The same figures through Xpra's HTML5 client, or why there are none. */
  readonly xpra: XpraOutcome;
}

function log(text: string): void {
  process.stderr.write(`[bench web] ${text}\n`);
}

/**
 * In the page (plain JavaScript: this build has no DOM types): click, then every frame check the
 * canvas; ms to the handshake and to the first clock frame.
 */
const CLICK_TO_FRAME = `(async () => {
  const button = document.querySelector('button.app[data-app="xclock"]');
  if (button === null) throw new Error('no Clock button');
  const start = performance.now();
  button.click();
  let handshake = NaN;
  return new Promise((resolve, reject) => {
    const deadline = start + 30000;
    const tick = () => {
      const win = document.querySelector('section.window[data-app="xclock"]');
      if (Number.isNaN(handshake) && win !== null && win.dataset.state === 'running') handshake = performance.now() - start;
      const canvas = win === null ? null : win.querySelector('canvas');
      const context = canvas === null ? null : canvas.getContext('2d');
      if (context !== null && canvas.width > 0) {
        const data = context.getImageData(0, 0, Math.min(canvas.width, 400), Math.min(canvas.height, 400)).data;
        const seen = new Set();
        for (let i = 0; i < data.length && seen.size < 3; i += 20) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
        if (seen.size > 2) { resolve({ frameMs: performance.now() - start, handshakeMs: handshake }); return; }
      }
      if (performance.now() > deadline) reject(new Error('no frame in 30 s'));
      else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
})()`;

async function clickToFrame(page: Page): Promise<{ frameMs: number; handshakeMs: number }> {
  return page.evaluate<{ frameMs: number; handshakeMs: number }>(CLICK_TO_FRAME);
}

/** Records, in the page, when each WebSocket data frame leaves and arrives (before the page's own scripts). */
const WIRE_PROBE = `
  window.__wire = { sent: [], received: [] };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { if (typeof data !== 'string') window.__wire.sent.push(performance.now()); return send.call(this, data); };
  const add = WebSocket.prototype.addEventListener;
  WebSocket.prototype.addEventListener = function (type, listener, options) {
    if (type === 'message') {
      const wrapped = (event) => { if (typeof event.data !== 'string') window.__wire.received.push(performance.now()); return listener.call(this, event); };
      return add.call(this, type, wrapped, options);
    }
    return add.call(this, type, listener, options);
  };
`;

interface EchoSample { wireUs: number; screenUs: number }

/** In the page: one keystroke into xterm's input; times to its echo frame and to the character on screen. */
const KEYSTROKE = `(async ({ char, column }) => {
  const wire = window.__wire;
  const rows = document.querySelector('section.window[data-app="sh"] .xterm-rows');
  const input = document.querySelector('section.window[data-app="sh"] textarea.xterm-helper-textarea');
  if (rows === null || input === null) throw new Error('no terminal');
  const before = wire.received.length;
  const sentBefore = wire.sent.length;
  const start = performance.now();
  // What a key press amounts to for xterm.js: an input event with the character.
  input.dispatchEvent(new InputEvent('input', { data: char, inputType: 'insertText', bubbles: true }));
  return new Promise((resolve, reject) => {
    const deadline = start + 10000;
    const check = () => {
      const lines = [...rows.children].map((row) => row.textContent || '').filter((text) => text.trim() !== '');
      const line = lines.length === 0 ? '' : lines[lines.length - 1];
      if (wire.received.length > before && line.length >= column && line[column - 1] === char) {
        const sent = wire.sent.length > sentBefore ? wire.sent[sentBefore] : start;
        resolve({ wireUs: (wire.received[before] - sent) * 1000, screenUs: (performance.now() - start) * 1000 });
        return;
      }
      if (performance.now() > deadline) reject(new Error('no echo of ' + char));
      else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
})`;

interface EchoSample { wireUs: number; screenUs: number }

async function keystroke(page: Page, char: string, column: number): Promise<EchoSample> {
  return page.evaluate<EchoSample>(`${KEYSTROKE}(${JSON.stringify({ char, column })})`);
}

export async function main(argv: readonly string[]): Promise<WebBenchResult | undefined> {
  if (process.getuid?.() !== 0) {
    log('skipped: needs root (sandboxes run as ebp-sandbox)');
    return undefined;
  }
  if (!existsSync(CHROMIUM)) {
    log(`skipped: needs ${CHROMIUM}`);
    return undefined;
  }
  const quick = argv.includes('--quick');
  const frames = quick ? 3 : 8;
  const keys = quick ? 60 : 300;
  spawnSync(process.execPath, [EBP, 'setup'], { stdio: 'ignore' });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const [alpha, beta] = await Promise.all([
      startWebDaemon('alpha', { name: 'alpha', policy: 'trusted-only', apps: [...STANDARD_APPS, { id: 'xclock', name: 'Clock', exec: 'xclock -update 1' }] }),
      startWebDaemon('beta', { name: 'beta', policy: 'trusted-only', apps: [] }),
    ]);
    await ebpOk(alpha.stateDir, ['trust', '--key', (await ebpOk(beta.stateDir, ['id', '--public-key'])).stdout.trim(), '--name', 'beta']);
    await ebpOk(beta.stateDir, ['peers', 'add', alpha.endpoint]);
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    await context.addInitScript(WIRE_PROBE);
    const page = await context.newPage();
    await page.goto(beta.loginUrl);
    await page.locator('button.app[data-app="xclock"]').waitFor({ timeout: 30_000 });

    log(`1. click-to-first-frame of xclock, ${frames} launches`);
    const frameMs: number[] = [];
    const handshakeMs: number[] = [];
    for (let i = 0; i < frames; i += 1) {
      const { frameMs: frame, handshakeMs: handshake } = await clickToFrame(page);
      frameMs.push(frame);
      handshakeMs.push(handshake);
      await page.locator('section.window[data-app="xclock"] button.close').click();
      await waitUntil(async () => (JSON.parse((await ebpOk(alpha.stateDir, ['sessions', '--json'])).stdout) as unknown[]).length === 0, 15_000, 'the session to end');
    }

    log(`2. keystroke-to-echo in the page's terminal, ${keys} keystrokes`);
    await page.locator('button.app[data-app="sh"]').click();
    const window = page.locator('section.window[data-app="sh"]');
    await window.locator('.status', { hasText: 'running' }).waitFor({ timeout: 20_000 });
    await window.locator('.xterm-rows').filter({ hasText: '$' }).waitFor({ timeout: 10_000 });
    const wire: number[] = [];
    const screen: number[] = [];
    let column = 3; // after "$ "
    for (let i = 0; i < keys; i += 1) {
      if (column > 60) {
        await page.keyboard.press('Enter');
        await page.waitForTimeout(100);
        column = 3;
      }
      const sample = await keystroke(page, String.fromCharCode(97 + (i % 26)), column);
      column += 1;
      if (i >= 10) {
        wire.push(sample.wireUs);
        screen.push(sample.screenUs);
      }
    }
    await window.locator('button.close').click();

    log('2. anchors: ssh -tt into alpha, and ebp run through beta (bench/pty-echo.py)');
    const dir = tempDir('sshkey');
    const key = join(dir, 'id_ed25519');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key], { stdio: 'ignore' });
    await ebpOk(alpha.stateDir, ['trust', '--key', `${key}.pub`, '--name', 'openssh']);
    const sessions = [
      { name: 'ssh', argv: ['ssh', '-tt', '-p', String(alpha.port), '-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', 'bench@127.0.0.1', 'cat'] },
      { name: 'ebp', argv: [process.execPath, EBP, '--state-dir', beta.stateDir, 'run', alpha.endpoint, 'cat'] },
    ];
    const echoed = spawnSync('/usr/bin/python3', [join(ROOT, 'bench', 'pty-echo.py'), String(keys), '10', '20', JSON.stringify(sessions)], { encoding: 'utf8', timeout: 300_000 });
    let sshUs: Summary | undefined;
    let ebpRunUs: Summary | undefined;
    let problem: string | undefined;
    if (echoed.status === 0) {
      const parsed = JSON.parse(echoed.stdout) as Record<string, { us: number[] }>;
      sshUs = summarize(parsed['ssh']?.us ?? []);
      ebpRunUs = summarize(parsed['ebp']?.us ?? []);
    } else problem = `pty-echo.py: ${echoed.stderr.trim().split('\n').slice(-2).join(' / ')}`;

    log('3. anchor: Xpra\'s HTML5 client (bench/xpra.ts)');
    const xpra = await benchXpra(browser, { frames, keys });
    if (xpra.kind === 'unavailable') log(`xpra: ${xpra.reason}`);
    const result: WebBenchResult = {
      firstFrameMs: summarize(frameMs), handshakeMs: summarize(handshakeMs),
      echo: { pageWireUs: summarize(wire), pageScreenUs: summarize(screen), sshUs, ebpRunUs, problem },
      xpra,
    };
    report(result);
    return result;
  } finally {
    await browser.close();
    await poolCleanup();
  }
}

function xpraAnchor(outcome: XpraOutcome, text: (result: Extract<XpraOutcome, { kind: 'measured' }>['result']) => string): string {
  return outcome.kind === 'measured' ? text(outcome.result) : 'no Xpra (see below)';
}

function report(result: WebBenchResult): void {
  const ms = (value: number): string => `${round(value, 0)} ms`;
  const us = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? '–' : `${round(value / 1000, 2)} ms`);
  const rows = [
    ['| measure | median | p90 | anchor |', '|---|---|---|---|'].join('\n'),
    `| xclock: click → RFB handshake done | ${ms(result.handshakeMs.median)} | ${ms(result.handshakeMs.p90)} | – |`,
    `| xclock: click → first frame on the canvas | ${ms(result.firstFrameMs.median)} | ${ms(result.firstFrameMs.p90)} | ${xpraAnchor(result.xpra, (x) => `Xpra launch → frame ${ms(x.launchToFrameMs.median)}`)} |`,
    `| terminal: key sent → echo frame back (page WebSocket) | ${us(result.echo.pageWireUs.median)} | ${us(result.echo.pageWireUs.p90)} | ssh -tt ${us(result.echo.sshUs?.median)} (p90 ${us(result.echo.sshUs?.p90)}) |`,
    `| terminal: key event → echo on screen (xterm.js) | ${us(result.echo.pageScreenUs.median)} | ${us(result.echo.pageScreenUs.p90)} | ebp run ${us(result.echo.ebpRunUs?.median)} (p90 ${us(result.echo.ebpRunUs?.p90)}) |`,
  ];
  if (result.xpra.kind === 'measured') {
    const x = result.xpra.result;
    const ratio = (ours: number, theirs: number): string => `${round(ours / theirs, 2)}×`;
    rows.push(
      '',
      `Xpra ${x.version}'s HTML5 client in the same Chromium (bench/xpra.ts):`,
      '',
      '| measure | Xpra median | Xpra p90 | ebp median | ebp / Xpra |',
      '|---|---|---|---|---|',
      `| xclock: launch → first frame (Xpra: client connected, app started on its display; ebp: click, sandbox, Xvnc, app) | ${ms(x.launchToFrameMs.median)} | ${ms(x.launchToFrameMs.p90)} | ${ms(result.firstFrameMs.median)} | ${ratio(result.firstFrameMs.median, x.launchToFrameMs.median)} |`,
      `| xclock: open the viewer → first frame (Xpra: navigation to a running xclock; ebp: click → first frame) | ${ms(x.navigateToFrameMs.median)} | ${ms(x.navigateToFrameMs.p90)} | ${ms(result.firstFrameMs.median)} | ${ratio(result.firstFrameMs.median, x.navigateToFrameMs.median)} |`,
      `| terminal: key event → echo on screen (Xpra: xterm running cat; ebp: xterm.js) | ${us(x.keyToScreenUs.median)} | ${us(x.keyToScreenUs.p90)} | ${us(result.echo.pageScreenUs.median)} | ${ratio(result.echo.pageScreenUs.median, x.keyToScreenUs.median)} |`,
    );
  } else rows.push('', `No Xpra anchor: ${result.xpra.reason}`);
  const text = rows.join('\n');
  process.stdout.write(`\n### Apps in the web page\n\n${text}\n${result.echo.problem === undefined ? '' : `\n${result.echo.problem}\n`}`);
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'web.json'), `${JSON.stringify({ date: new Date().toISOString(), ...result, table: text }, null, 2)}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));
