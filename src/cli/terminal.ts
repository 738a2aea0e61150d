// Connects the person's terminal (or plain pipes) to a sandbox: raw mode and resizes for a
// terminal, signals forwarded, the terminal restored however the sandbox ends.
import { spawnSync } from 'node:child_process';
import { openPty } from '../lib/pty.js';
import type { SandboxEngine } from '../sandbox/engine.js';
import type { SandboxPolicy } from '../sandbox/policy.js';
import { startSandbox, type SandboxExit, type SandboxHandle } from '../sandbox/runner.js';

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

function forwardSignals(handle: SandboxHandle, signals: readonly NodeJS.Signals[]): () => void {
  const listeners = signals.map((signal) => {
    const listener = (): void => {
      if (!handle.kill(signal)) void handle.stop();
    };
    process.on(signal, listener);
    return [signal, listener] as const;
  });
  return () => {
    for (const [signal, listener] of listeners) process.off(signal, listener);
  };
}

export async function runInTerminalOrPipes(policy: SandboxPolicy, engine: SandboxEngine): Promise<SandboxExit> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  if (!stdin.isTTY || !stdout.isTTY) {
    // Pipes: the sandbox gets our descriptors directly, no copying through this process.
    const handle = await startSandbox(policy, { engine });
    const unforward = forwardSignals(handle, FORWARDED);
    try {
      return await handle.exited;
    } finally {
      unforward();
    }
  }

  const pty = openPty({ cols: stdout.columns, rows: stdout.rows });
  let handle: SandboxHandle;
  try {
    handle = await startSandbox(policy, { engine, stdin: pty.slaveFd, stdout: pty.slaveFd, stderr: pty.slaveFd, terminal: true });
  } finally {
    pty.closeSlave();
  }
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
  // In raw mode Ctrl-C is a byte for the sandbox's terminal; only signals sent to ebp itself
  // (kill, a closed terminal) are forwarded.
  const unforward = forwardSignals(handle, ['SIGTERM', 'SIGHUP']);
  try {
    return await handle.exited;
  } finally {
    unforward();
    stdout.off('resize', onResize);
    stdin.unpipe(pty.master);
    stdin.setRawMode(false);
    stdin.pause();
    pty.master.destroy();
  }
}
