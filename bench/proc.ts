// Small process and port helpers shared by the benchmarks that start real servers (sshd, Xvfb,
// daemons): run a command to completion, insist that it succeeds, pick a free loopback port.
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

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
