// Connects the person's terminal or pipes to a process on a peer: raw mode and resizes for a
// terminal, signals forwarded, the terminal restored however the session ends.
// process.stdin and process.stdout are made only when they are used (see run-request.ts).
import type { Readable } from 'node:stream';
import type { StdioTaken } from '../control/caller-stdio.js';
import { FORWARDED_SIGNALS, isTerminal } from './run-request.js';
import { writesDone } from '../lib/streams.js';
import { exitStatus, type RemoteExit, type RemoteProcess } from '../transport/remote-process.js';
import { pipeHandingOff } from '../lib/handoff.js';

export interface AttachOptions {
  readonly terminal: boolean;
  /** Descriptors the local daemon reads and writes itself: not read or written here. */
  readonly taken?: StdioTaken;
  /**
   * This process ends with the app's status (`ebp run`): when there is nothing to restore or
   * flush here (no terminal, the daemon took all three descriptors), it exits the moment the
   * status comes in, not a few promise turns later.
   */
  readonly exitWithStatus?: boolean;
}

export async function attach(remote: RemoteProcess, options: AttachOptions): Promise<{ status: number; exit: RemoteExit }> {
  const taken = options.taken;
  if (options.exitWithStatus === true && !options.terminal && taken?.stdin === true && taken.stdout && taken.stderr) {
    remote.onExitKnown?.((exit) => {
      if (exit.kind !== 'broken') process.exit(exitStatus(exit));
    });
  }
  const cleanups: (() => void)[] = [];
  if (options.terminal && isTerminal(0)) {
    const { stdin, stdout } = process;
    stdin.setRawMode(true);
    // Loaded only for terminals: a launch with pipes should not pay for child_process.
    const { spawnSync } = await import('node:child_process');
    spawnSync('stty', ['-opost'], { stdio: ['inherit', 'ignore', 'ignore'] });
    cleanups.push(() => stdin.setRawMode(false));
    const onResize = (): void => {
      remote.resize(stdout.columns, stdout.rows);
    };
    stdout.on('resize', onResize);
    cleanups.push(() => stdout.off('resize', onResize));
  }
  // Signals sent to this process (not keys typed in raw mode) go on to the app.
  for (const signal of options.terminal ? (['SIGTERM', 'SIGHUP'] as const) : FORWARDED_SIGNALS) {
    const listener = (): void => {
      remote.signal(signal.slice(3));
    };
    process.on(signal, listener);
    cleanups.push(() => process.off(signal, listener));
  }
  // Keys go out with a hand-off (lib/handoff.ts); output to the person's own terminal without:
  // measured on the cold path, a hand-off there made the echo 10-20 µs slower (what this process
  // still had to do then delayed the next key).
  if (taken?.stdin !== true) pipeHandingOff(process.stdin, remote.stdin);
  if (taken?.stdout !== true) remote.stdout.pipe(process.stdout, { end: false });
  if (taken?.stderr !== true) remote.stderr.pipe(process.stderr, { end: false });
  try {
    const exit = await remote.exit;
    // The status can overtake the last output still queued behind a slow reader: let the
    // output streams end first (as the daemon's relay does). The exit came after both EOFs, so
    // they end once read, however slowly; a broken session is given a second. Nothing to wait
    // for (the daemon writes the output itself, or it has all come): no timer either.
    const outputs = [taken?.stdout === true ? undefined : remote.stdout, taken?.stderr === true ? undefined : remote.stderr]
      .filter((stream): stream is Readable => stream !== undefined && !stream.readableEnded && !stream.destroyed);
    if (outputs.length > 0) {
      const ended = Promise.all(outputs.map(async (stream) => {
        await new Promise<void>((resolve) => {
          stream.once('end', resolve);
          stream.once('close', resolve);
        });
      }));
      await (exit.kind === 'broken' ? Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 1000).unref())]) : ended);
    }
    // Node writes to a pipe asynchronously: what it still holds is lost if the process exits
    // now (`ebp run` exits at once). Wait until the reader has taken it.
    await Promise.all([taken?.stdout === true ? undefined : writesDone(process.stdout), taken?.stderr === true ? undefined : writesDone(process.stderr)]);
    return { status: exitStatus(exit), exit };
  } finally {
    for (const cleanup of cleanups.reverse()) cleanup();
    if (taken?.stdin !== true) {
      process.stdin.unpipe(remote.stdin);
      process.stdin.pause();
    }
  }
}
