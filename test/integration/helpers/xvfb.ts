// The person's display in the X11 tests: a private Xvfb on a free display number, with a cookie
// (`-auth`) so that only clients that present it get in, TCP off, a black root window (so that a
// screenshot that is not black shows a window), and helpers around xdotool and xwd.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export const X11_TOOLS = ['/usr/bin/Xvfb', '/usr/bin/xauth', '/usr/bin/xeyes', '/usr/bin/xmessage', '/usr/bin/xterm', '/usr/bin/xdotool', '/usr/bin/xwd'];
export const X11_MISSING = X11_TOOLS.filter((tool) => !existsSync(tool));

export interface Xvfb {
  readonly number: number;
  /** ":N" */
  readonly display: string;
  /** The Xauthority file with the display's cookie. */
  readonly authFile: string;
  readonly cookie: string;
  /** DISPLAY and XAUTHORITY for a client of this display. */
  readonly env: { DISPLAY: string; XAUTHORITY: string };
  stop(): Promise<void>;
}

export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(program: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 20_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(program, args, { env, timeout: timeoutMs, encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

function freeDisplay(): number {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const n = 100 + Math.floor(Math.random() * 800);
    if (!existsSync(`/tmp/.X11-unix/X${n}`) && !existsSync(`/tmp/.X${n}-lock`)) return n;
  }
  throw new Error('no free X display number');
}

export async function startXvfb(options: { width?: number; height?: number } = {}): Promise<Xvfb> {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-xvfb-'));
  const authFile = join(dir, 'Xauthority');
  writeFileSync(authFile, '', { mode: 0o600 });
  const cookie = randomBytes(16).toString('hex');
  for (let attempt = 0; ; attempt += 1) {
    const number = freeDisplay();
    const display = `:${number}`;
    const added = await run('/usr/bin/xauth', ['-q', '-f', authFile, 'add', display, 'MIT-MAGIC-COOKIE-1', cookie]);
    if (added.code !== 0) throw new Error(`xauth add failed: ${added.stderr}`);
    const child: ChildProcess = spawn('/usr/bin/Xvfb', [display, '-auth', authFile, '-nolisten', 'tcp', '-noreset', '-br', '-screen', '0', `${options.width ?? 1024}x${options.height ?? 768}x24`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('close', () => { resolve(); }));
    const env = { DISPLAY: display, XAUTHORITY: authFile };
    let up = false;
    for (let i = 0; i < 100 && child.exitCode === null; i += 1) {
      if (existsSync(`/tmp/.X11-unix/X${number}`) && (await run('/usr/bin/xdpyinfo', [], { ...process.env, ...env }, 5000)).code === 0) {
        up = true;
        break;
      }
      await delay(50);
    }
    if (!up) {
      child.kill('SIGKILL');
      await exited;
      if (attempt < 3) continue;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`Xvfb ${display} did not start: ${log}`);
    }
    process.once('exit', () => child.kill('SIGKILL'));
    return {
      number, display, authFile, cookie, env,
      async stop() {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/** `xdotool ARGS` as a trusted client of the display (the person's own tools). */
export function xdotool(x: Xvfb, args: readonly string[]): Promise<CommandResult> {
  return run('/usr/bin/xdotool', args, { ...process.env, ...x.env });
}

/** Window ids whose name matches (anchored regex), as xdotool finds them. */
export async function windowsNamed(x: Xvfb, name: string): Promise<string[]> {
  const result = await xdotool(x, ['search', '--name', `^${name}$`]);
  return result.stdout.split('\n').filter((line) => /^\d+$/.test(line));
}

export interface Geometry {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export async function geometry(x: Xvfb, window: string): Promise<Geometry> {
  const result = await xdotool(x, ['getwindowgeometry', '--shell', window]);
  const value = (key: string): number => Number(new RegExp(`^${key}=(\\d+)$`, 'm').exec(result.stdout)?.[1] ?? NaN);
  return { x: value('X'), y: value('Y'), width: value('WIDTH'), height: value('HEIGHT') };
}

export interface Screenshot {
  readonly width: number;
  readonly height: number;
  /** 0xRRGGBB of a pixel (24/32-bit ZPixmap, as Xvfb -screen WxHx24 gives). */
  pixel(x: number, y: number): number;
}

/** `xwd -root` on the display (a trusted client), decoded (XWD format, version 7). */
export async function screenshot(x: Xvfb): Promise<Screenshot> {
  const result = await run('/usr/bin/xwd', ['-root', '-silent', '-display', x.display], { ...process.env, ...x.env });
  if (result.code !== 0) throw new Error(`xwd failed: ${result.stderr}`);
  const data = Buffer.from(result.stdout, 'latin1');
  const field = (index: number): number => data.readUInt32BE(index * 4);
  const headerSize = field(0);
  const width = field(4);
  const height = field(5);
  const bitsPerPixel = field(11);
  const bytesPerLine = field(12);
  const byteOrder = field(7);
  const ncolors = field(19);
  if (bitsPerPixel !== 32) throw new Error(`unexpected xwd depth ${bitsPerPixel}`);
  const start = headerSize + ncolors * 12;
  return {
    width,
    height,
    pixel(px, py) {
      const offset = start + py * bytesPerLine + px * 4;
      return (byteOrder === 0 ? data.readUInt32LE(offset) : data.readUInt32BE(offset)) & 0xffffff;
    },
  };
}
