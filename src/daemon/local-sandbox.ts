// `ebp sandbox` through the running daemon: the daemon already holds the sandbox engine (seccomp
// program, cgroups, FFI), so a one-shot command skips that start-up. The control socket is the
// daemon user's alone (0700), so the caller is that same user: the sandbox runs exactly as it
// would have in the CLI's own process.
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { relayToProcess } from '../control/frames.js';
import { EbpError } from '../lib/errors.js';
import { openPty } from '../lib/pty.js';
import type { SandboxEngine } from '../sandbox/engine.js';
import { buildPolicy, type SandboxRequest } from '../sandbox/request.js';
import { startSandbox } from '../sandbox/runner.js';
import type { RemoteProcess } from '../transport/remote-process.js';

const SIGNALS = new Set(['INT', 'TERM', 'HUP', 'QUIT', 'KILL', 'USR1', 'USR2', 'WINCH']);

function optionalNumber(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new EbpError('USAGE', `"${name}" must be a positive number`);
  return value;
}

/** The request as sent by the CLI, checked field by field (paths are absolute already). */
export function sandboxRequestFrom(params: Record<string, unknown>): SandboxRequest {
  const command = params['command'];
  if (!Array.isArray(command) || command.length === 0 || !command.every((word): word is string => typeof word === 'string')) {
    throw new EbpError('USAGE', 'no command given');
  }
  const shares = params['shares'] ?? [];
  if (!Array.isArray(shares) || !shares.every((share): share is string => typeof share === 'string' && share.startsWith('/'))) {
    throw new EbpError('USAGE', 'shares must be absolute SRC[:DST][:ro] strings');
  }
  const env = params['env'] ?? {};
  if (typeof env !== 'object' || Array.isArray(env) || !Object.values(env as Record<string, unknown>).every((value) => typeof value === 'string')) throw new EbpError('USAGE', 'env must map names to strings');
  const homeDir = params['homeDir'];
  if (homeDir !== undefined && (typeof homeDir !== 'string' || !homeDir.startsWith('/'))) throw new EbpError('USAGE', 'homeDir must be an absolute path');
  const numbers = {
    memoryBytes: optionalNumber(params['memoryBytes'], 'memoryBytes'),
    pids: optionalNumber(params['pids'], 'pids'),
    cpus: optionalNumber(params['cpus'], 'cpus'),
    homeSizeBytes: optionalNumber(params['homeSizeBytes'], 'homeSizeBytes'),
    tmpSizeBytes: optionalNumber(params['tmpSizeBytes'], 'tmpSizeBytes'),
    timeoutMs: optionalNumber(params['timeoutMs'], 'timeoutMs'),
  };
  const request: Record<string, unknown> = { command, shares, env, network: params['network'] === true };
  if (homeDir !== undefined) request['homeDir'] = homeDir;
  for (const [key, value] of Object.entries(numbers)) if (value !== undefined) request[key] = value;
  return request as unknown as SandboxRequest;
}

/** Runs the request in a sandbox and relays it over the control socket until it ends. */
export async function relaySandbox(engine: SandboxEngine, params: Record<string, unknown>, socket: Socket, leftover: Buffer): Promise<void> {
  const policy = buildPolicy(sandboxRequestFrom(params), engine.identity);
  const size = params['pty'] as { cols?: unknown; rows?: unknown } | undefined;
  const pty = size === undefined ? undefined : openPty({ cols: Number(size.cols) || 80, rows: Number(size.rows) || 24 });
  const abort = new AbortController();
  socket.once('close', () => {
    abort.abort();
  });
  let handle;
  try {
    handle = pty === undefined
      ? await startSandbox(policy, { engine, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', signal: abort.signal })
      : await startSandbox(policy, { engine, stdin: pty.slaveFd, stdout: pty.slaveFd, stderr: pty.slaveFd, terminal: true, signal: abort.signal });
  } finally {
    pty?.closeSlave();
  }
  const started = handle;
  const stdout = pty?.master ?? started.stdout;
  const stdin = pty?.master ?? started.stdin;
  const stderr = started.stderr;
  if (stdout === null || stdin === null) throw new EbpError('INTERNAL', 'sandbox streams missing');
  // With a terminal, stderr is the terminal too: an empty stream stands in for it.
  const errors = stderr ?? Readable.from([]);
  const remote: RemoteProcess = {
    stdin,
    stdout,
    stderr: errors,
    resize(cols, rows) {
      pty?.resize({ cols, rows });
    },
    signal(name) {
      if (SIGNALS.has(name)) started.kill(`SIG${name}` as NodeJS.Signals);
    },
    close() {
      void started.stop(1000);
    },
    // How it ended, in words (OOM, timeout, set-up failure), travels with the status.
    exit: started.ended.then((exit) => ({ kind: 'code', code: exit.code, ...(exit.message === undefined ? {} : { message: exit.message }) }) as const),
  };
  socket.write(`${JSON.stringify({ ok: true, result: { id: started.id } })}\n`);
  socket.resume();
  await relayToProcess(socket, remote, leftover);
  pty?.master.destroy();
  await started.exited;
}
