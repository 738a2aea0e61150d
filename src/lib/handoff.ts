// Handing the CPU to the reader of an interactive write: a keystroke, its echo, an X11 request or
// reply. When this process writes to a socket or a terminal, the kernel wakes the process that
// waits for the bytes, usually on this same CPU (the wake is "affine"), and there it waits until
// this process goes back to sleep. Node has work to do after each write: stream bookkeeping, its
// tick and microtask queues, another turn of libuv's loop. Measured on an echo round trip
// (perf sched): 14-17 µs from a daemon's write until the process it woke ran, against 4-8 µs after
// OpenSSH's; four such hops per keystroke made up most of the gap between the two. sched_yield(2)
// after the write lets the woken reader run first; when it runs on another CPU (or nothing waits)
// the call returns at once. Bulk data is left alone: its chunks are large and the reader is busy.
// So is output to the person's own terminal (cli/attach.ts says why).
import type { Readable, Writable } from 'node:stream';

/** Chunks up to this size are interactive: typing, echo, screen updates, X11 round trips. */
export const INTERACTIVE_CHUNK = 4096;

/** EBP_HANDOFF=off: no hand-offs (the launch benchmark's what-if daemons run so). */
const disabled = process.env['EBP_HANDOFF'] === 'off';
let yieldCpu: (() => void) | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads the FFI that calls sched_yield(2). The first interactive write does it (and is not
 * followed by a hand-off): a command that never relays anything, `ebp run HOST true`, should not
 * load a native module for nothing (about 10 ms of a short command's start).
 */
export function loadHandOff(): Promise<void> {
  loading ??= import('./libc.js').then((libc) => { yieldCpu = libc.yieldCpu; }, () => undefined);
  return loading;
}

/** After a write of BYTES that a reader waits for: sched_yield(2), if the write was interactive. */
export function handOff(bytes: number): void {
  if (bytes > INTERACTIVE_CHUNK || disabled) return;
  if (yieldCpu === undefined) void loadHandOff();
  else yieldCpu();
}

/**
 * `source.pipe(dest)` (with its options), then, after each interactive chunk the pipe has written,
 * sched_yield(2). Stops with the pipe: on `unpipe`, or when either stream closes.
 */
export function pipeHandingOff<T extends Writable>(source: Readable, dest: T, options?: { end?: boolean }): T {
  source.pipe(dest, options);
  // Registered after the pipe's own 'data' listener, so this runs once the chunk is written.
  const onData = (chunk: Buffer | string): void => {
    handOff(chunk.length);
  };
  const stop = (): void => {
    source.off('data', onData);
    dest.off('unpipe', onUnpipe);
    source.off('close', stop);
    dest.off('close', stop);
  };
  const onUnpipe = (from: Readable): void => {
    if (from === source) stop();
  };
  source.on('data', onData);
  dest.on('unpipe', onUnpipe);
  source.once('close', stop);
  dest.once('close', stop);
  return dest;
}
