// Small process and port helpers shared by the benchmarks that start real servers (sshd, Xvfb,
// daemons): run a command to completion, insist that it succeeds, pick a free loopback port.
import { spawnSync } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
  /** Throw stdout away (large outputs); `stdout` is then empty. */
  readonly discardStdout?: boolean;
}

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly error: Error | undefined;
}

export function run(argv: readonly string[], options: RunOptions = {}): RunResult {
  const [command, ...args] = argv;
  const result = spawnSync(command ?? 'false', args, {
    encoding: 'utf8', timeout: options.timeoutMs ?? 30_000, env: options.env ?? process.env,
    stdio: ['ignore', options.discardStdout === true ? 'ignore' : 'pipe', 'pipe'],
  });
  // With stdout ignored, spawnSync gives null there, whatever its typings say.
  const text = (value: string | null): string => value ?? '';
  return { status: result.status, stdout: text(result.stdout), stderr: text(result.stderr), error: result.error };
}

/**
 * The `ebp` command as a person runs it: package.json's `bin`, dist/bin/ebp (the build writes it
 * with this machine's node in its first line); bin/ebp when that is not built.
 */
export function ebpCommand(root: string): string {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin?: { ebp?: unknown } };
  const declared = typeof manifest.bin?.ebp === 'string' ? join(root, manifest.bin.ebp) : undefined;
  return declared !== undefined && existsSync(declared) ? declared : join(root, 'bin', 'ebp');
}

/** stdout of a command that must succeed; otherwise an error naming WHAT with its output. */
export function must(argv: readonly string[], what: string, options: RunOptions = {}): string {
  const result = run(argv, options);
  if (result.error !== undefined || result.status !== 0) throw new Error(`${what} failed: ${result.error?.message ?? ''}${result.stderr}${result.stdout}`.trim());
  return result.stdout;
}

/** A port that was free on HOST a moment ago (the server that wants it binds it next). */
export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => { resolve(port); });
    });
  });
}

/**
 * The anchor's login user for a private sshd: HOME gets the stock /etc/skel files (a heavy rc
 * file would flatter ebp), a "*" password (without PAM, sshd refuses a locked "!" account but
 * lets public keys into a "*" one). Returns whether the user is ours (made now, or marked with
 * MARK by an earlier run): only then may the caller delete it.
 */
export function prepareLoginUser(name: string, mark: string, home: string): { ours: boolean; uid: number; gid: number } {
  mkdirSync(home);
  cpSync('/etc/skel', home, { recursive: true });
  const existing = run(['getent', 'passwd', name]);
  let ours: boolean;
  if (existing.status === 0) {
    ours = existing.stdout.split(':')[4] === mark;
    must(['usermod', '--home', home, '--shell', '/bin/bash', name], 'usermod');
  } else {
    must(['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', home, '--shell', '/bin/bash', '--comment', mark, name], 'useradd');
    ours = true;
  }
  must(['usermod', '--password', '*', name], 'usermod --password');
  const uid = Number(must(['id', '-u', name], 'id').trim());
  const gid = Number(must(['id', '-g', name], 'id').trim());
  for (const entry of ['', ...readdirSync(home)]) chownSync(join(home, entry), uid, gid);
  return { ours, uid, gid };
}
