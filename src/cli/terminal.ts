// Connects the person's terminal (or plain pipes) to a sandbox: raw mode and resizes for a
// terminal, signals forwarded, the terminal restored however the sandbox ends.
import { spawnSync } from 'node:child_process';
import { isatty } from 'node:tty';
import type { SandboxEngine } from '../sandbox/engine.js';
import type { SandboxPolicy } from '../sandbox/policy.js';
import { startSandbox, type SandboxExit, type SandboxHandle } from '../sandbox/runner.js';
import { FORWARDED_SIGNALS } from './run-request.js';

/**
 * Signals sent to ebp go on to the command once it runs; before that they cancel the start-up,
 * so that a sandbox half set up (its cgroup made, bwrap not yet running) is cleaned up too.
 */
function forwardSignals(signals: readonly NodeJS.Signals[], abort: AbortController, current: () => SandboxHandle | undefined): () => void {
  const listeners = signals.map((signal) => {
    const listener = (): void => {
      const handle = current();
      if (handle === undefined) abort.abort();
      else if (!handle.kill(signal)) void handle.stop();
    };
    process.on(signal, listener);
    return [signal, listener] as const;
  });
  return () => {
    for (const [signal, listener] of listeners) process.off(signal, listener);
  };
}

export async function runInTerminalOrPipes(policy: SandboxPolicy, engine: SandboxEngine): Promise<SandboxExit> {
  const abort = new AbortController();
  let handle: SandboxHandle | undefined;
  // Asked of the descriptors: process.stdin and stdout are streams, made only when a terminal
  // needs them (the pipes path never reads or writes them here).
  const terminal = isatty(0) && isatty(1);
  // In raw mode Ctrl-C is a byte for the sandbox's terminal; only signals sent to ebp itself
  // (kill, a closed terminal) are forwarded.
  const unforward = forwardSignals(terminal ? ['SIGTERM', 'SIGHUP'] : FORWARDED_SIGNALS, abort, () => handle);
  try {
    if (!terminal) {
      // Pipes: the sandbox gets our descriptors directly, no copying through this process.
      handle = await startSandbox(policy, { engine, signal: abort.signal });
      return await handle.exited;
    }
    return await runInTerminal(policy, engine, abort.signal, (started) => {
      handle = started;
    });
  } finally {
    unforward();
  }
}

async function runInTerminal(policy: SandboxPolicy, engine: SandboxEngine, signal: AbortSignal, onStart: (handle: SandboxHandle) => void): Promise<SandboxExit> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  // Loaded only here: the pseudo-terminal code needs the FFI, pipes do not.
  const { openPty } = await import('../lib/pty.js');
  const pty = openPty({ cols: stdout.columns, rows: stdout.rows });
  let handle: SandboxHandle;
  try {
    handle = await startSandbox(policy, { engine, stdin: pty.slaveFd, stdout: pty.slaveFd, stderr: pty.slaveFd, terminal: true, signal });
  } finally {
    pty.closeSlave();
  }
  onStart(handle);
  stdin.setRawMode(true);
  // libuv's raw mode keeps output post-processing (\n → \r\n); the sandbox's own terminal already
  // did that, so turn it off as ssh does. setRawMode(false) restores the saved settings.
  spawnSync('stty', ['-opost'], { stdio: ['inherit', 'ignore', 'ignore'] });
  stdin.resume();
  stdin.pipe(pty.master);
  pty.master.pipe(stdout, { end: false });
  const onResize = (): void => {
    pty.resize({ cols: stdout.columns, rows: stdout.rows });
  };
  stdout.on('resize', onResize);
  try {
    return await handle.exited;
  } finally {
    stdout.off('resize', onResize);
    stdin.unpipe(pty.master);
    stdin.setRawMode(false);
    stdin.pause();
    pty.master.destroy();
  }
}
