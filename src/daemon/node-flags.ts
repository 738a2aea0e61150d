// The Node options the daemon runs with: the places that start it pass these (`npm start`, the
// systemd unit, the tests and benchmarks), and `ebp up` says in its log when they are missing.
// They are not on bin/ebp's first line: any V8 option makes Node set aside the code cache of its
// own built-in modules, about 7 ms more for every short command.
//
// Why: a long-running daemon has a small heap (about 8 MB live) and V8 sets its old generation's
// next limit at about three times that. The young generation only grows (with every byte that
// survives a scavenge) up to 16 MB; once it holds more than the old generation has room left, V8
// starts incremental marking at every allocation check. Streams of buffers (bulk output, files,
// X11) then cost twice the CPU: daemon CPU per 256 MiB of output went from 250 to 500 ms after
// 25 connections had come and gone. A larger initial old space keeps the room above the young
// generation's size, and costs nothing until the heap uses it.
export const DAEMON_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

/** The daemon's flags this process was started without. */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return DAEMON_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}
