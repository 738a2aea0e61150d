// Optimizing sooner in a process that relays a terminal session.
//
// V8 compiles a function with its optimizing compiler once the function has used up an
// "interrupt budget": a count of bytecode executed, 66 KiB of it by default (Node 20's V8). A short
// command never gets there, and should not: compiling would cost it more than it saves. A
// terminal session is the other case. Every keystroke and every screen update goes through the
// same few dozen functions: streams, ssh2's packet code, the cipher, this project's relays. Each
// runs only a little bytecode per call, so in a fresh process they stayed unoptimized well into
// the session.
//
// Measured with the launch benchmark's echo harness (2000 keys per session, in turns, the median
// of each session; ten rounds, the same command built with and without this):
// - the CLI dialling the host itself, the budget set once the connection is up and before the
//   session starts: 16.5 µs less per key (1.30x ssh's echo time -> 1.20x; faster in 10 of 10
//   rounds), 14.5 ms more from the start to the first echo;
// - set before dialling: 13.5 µs less per key but 39 ms more to the first echo (the handshake's
//   code compiled eagerly too);
// - set only when the relay starts, after the session is open: no difference (likely because
//   the session's functions were given the default budget while it connected, and spend that
//   first), so the CLI does not set it there;
// - a client daemon restarted before each round was 20–34 µs per key slower than one that had
//   run for a while; started with this budget, it was even with it. A daemon sets it at its first
//   terminal relay.
//
// The budget is one V8 flag; set at run time, it applies from then on (the unit test sees it on
// this Node). Only on the Node line it was checked on: V8 prints an error on the
// process's stderr (a person's terminal) for a flag it does not know. node:v8 is loaded then, not
// with the command.

/** The interrupt budget (bytes of bytecode) once a process relays a terminal. */
export const TERMINAL_INTERRUPT_BUDGET = 4000;

const CHECKED_NODE_MAJOR = 20;

let done = false;

/** Called by a process about to relay a terminal session: V8 optimizes hot code sooner from now on. */
export function optimizeSooner(): void {
  if (done) return;
  done = true;
  if (Number(process.versions.node.split('.')[0]) !== CHECKED_NODE_MAJOR) return;
  process.getBuiltinModule('node:v8').setFlagsFromString(`--interrupt-budget=${TERMINAL_INTERRUPT_BUDGET}`);
}
