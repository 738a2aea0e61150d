// The daemon's direct line to the CLI's own stdin/stdout/stderr. A launch relayed through the
// local daemon used to copy every byte CLI -> control socket -> daemon -> SSH channel and back;
// now the daemon opens the caller's terminal or pipes itself (through /proc/PID/fd of the process
// at the other end of the control socket, found with SO_PEERCRED) and the CLI only waits for the
// exit status. Taken: a terminal (when the caller is in its foreground), and on stdin pipes,
// devices and a file read from its start; on stdout/stderr a terminal and /dev/null. The rest
// stays on the frame relay, so nothing changes meaning.
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { ReadStream as TtyReadStream, WriteStream as TtyWriteStream, isatty } from 'node:tty';
import { isDevNull } from '../lib/descriptors.js';
import { peerPid } from '../lib/libc.js';

/** Which of the caller's descriptors the daemon took over (the CLI leaves those alone). */
export interface StdioTaken {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
}

export interface CallerStdio {
  readonly taken: StdioTaken;
  readonly stdin?: Readable;
  readonly stdout?: Writable;
  readonly stderr?: Writable;
  /** Closes every descriptor opened here (idempotent). */
  destroy(): void;
}

const NONE: StdioTaken = { stdin: false, stdout: false, stderr: false };
const BULK_CHUNK = 256 * 1024;

interface FdInfo {
  readonly pos: number;
  readonly flags: number;
}

function fdInfo(pid: number, fd: number): FdInfo | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    const pos = /^pos:\s+(\d+)/m.exec(text);
    const flags = /^flags:\s+([0-7]+)/m.exec(text);
    if (pos === null || flags === null) return undefined;
    return { pos: Number(pos[1]), flags: Number.parseInt(flags[1] ?? '0', 8) };
  } catch {
    return undefined;
  }
}

/** What /proc/PID/stat says of a process's terminal. */
interface TerminalOf {
  /** Its process group. */
  readonly pgrp: number;
  /** Its controlling terminal's device number (0: none), encoded as st_rdev is. */
  readonly tty: number;
  /** The foreground process group of that terminal. */
  readonly foreground: number;
}

function terminalOf(pid: number): TerminalOf | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state, ppid, pgrp,
    // session, tty_nr, tpgid.
    const [, , pgrp, , tty, foreground] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    if (pgrp === undefined || tty === undefined || foreground === undefined || [pgrp, tty, foreground].some((value) => !Number.isInteger(value))) return undefined;
    return { pgrp, tty, foreground };
  } catch {
    return undefined;
  }
}

function tryOpen(path: string, flags: number): number | undefined {
  try {
    return openSync(path, flags);
  } catch {
    return undefined;
  }
}

/**
 * Opens the caller's descriptor FD for reading. A new open file description: the caller's own
 * flags (blocking mode) are left as they are. Returns undefined when it must stay on the relay.
 */
function openInput(pid: number, terminal: TerminalOf | undefined): Readable | undefined {
  const path = `/proc/${pid}/fd/0`;
  // O_NONBLOCK: a pipe whose writer is gone must not block open(2); the stream handles EAGAIN.
  const fd = tryOpen(path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  if (fd === undefined) return undefined;
  try {
    const stat = fstatSync(fd);
    if (isatty(fd)) {
      // Only the caller's controlling terminal, while the caller is in its foreground: from the
      // background the caller would have been stopped on read (SIGTTIN), and the daemon reading
      // would steal the shell's keys instead. Relay then. (The terminal's own answer, tcgetpgrp,
      // is given only to processes it controls; the daemon is none of them.)
      if (terminal === undefined || terminal.tty === 0 || terminal.tty !== stat.rdev || terminal.foreground !== terminal.pgrp) throw new Error('background');
      return ownTerminal(fd, new TtyReadStream(fd));
    }
    if (stat.isFIFO()) return new Socket({ fd, readable: true, writable: false });
    if (isDevNull(stat)) {
      // Nothing to read: the app's stdin ends with the launch, not a read through the thread
      // pool later (a wake-up of this daemon, and of the host, in the middle of the launch).
      closeSync(fd);
      return Readable.from([]);
    }
    if (stat.isCharacterDevice()) return createReadStream('', { fd, highWaterMark: BULK_CHUNK });
    if (stat.isFile()) {
      // A new description reads from the start: take it only if the caller is there too.
      if (fdInfo(pid, 0)?.pos !== 0) throw new Error('offset');
      return createReadStream('', { fd, highWaterMark: BULK_CHUNK });
    }
    throw new Error('other');
  } catch {
    closeSync(fd);
    return undefined;
  }
}

/**
 * libuv opens a terminal anew for its handle (so that its non-blocking mode is its own) and
 * leaves the descriptor it was given as a copy it never closes: closed here, or every session
 * through the daemon would leave the person's terminal open in the daemon for good.
 */
function ownTerminal<T extends TtyReadStream | TtyWriteStream>(fd: number, stream: T): T {
  const handleFd = (stream as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (handleFd !== undefined && handleFd >= 0 && handleFd !== fd) closeSync(fd);
  return stream;
}

function openOutput(pid: number, which: 1 | 2): Writable | undefined {
  const path = `/proc/${pid}/fd/${which}`;
  const info = fdInfo(pid, which);
  if (info === undefined) return undefined;
  const append = (info.flags & constants.O_APPEND) !== 0;
  const fd = tryOpen(path, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK | (append ? constants.O_APPEND : 0));
  if (fd === undefined) return undefined;
  try {
    const stat = fstatSync(fd);
    if (isatty(fd)) {
      const stream = new TtyWriteStream(fd);
      // Node makes terminal writes blocking; the daemon's event loop must never wait on a
      // person's terminal (a paused one, Ctrl-S), so back to non-blocking with backpressure.
      (stream as unknown as { _handle?: { setBlocking?: (blocking: boolean) => void } })._handle?.setBlocking?.(false);
      return ownTerminal(fd, stream);
    }
    if (isDevNull(stat)) {
      // Output thrown away: no write(2) per SSH packet through the thread pool.
      closeSync(fd);
      return new Writable({ write: (_chunk, _encoding, callback) => { callback(); } });
    }
    // Pipes, files and other devices stay with the CLI for now: a write error there (EPIPE when
    // the reader of `ebp run A yes | head` is gone) must end the session as the CLI's own EPIPE
    // does, and the daemon's error path does not yet end a session whose input keeps flowing.
    throw new Error('other');
  } catch {
    closeSync(fd);
    return undefined;
  }
}

/**
 * Opens the stdio of PID, the process at the other end of the control socket (callerPid). The
 * control socket is this daemon user's alone, so that process is the same user (or root): the
 * kernel's own /proc permission check (ptrace read access) is the boundary, and nothing is
 * opened that the caller could not.
 */
export function openCallerStdio(pid: number | undefined, want: StdioTaken): CallerStdio {
  if (pid === undefined) return { taken: NONE, destroy: () => undefined };
  const stdin = want.stdin ? openInput(pid, terminalOf(pid)) : undefined;
  const stdout = want.stdout ? openOutput(pid, 1) : undefined;
  const stderr = want.stderr ? openOutput(pid, 2) : undefined;
  return callerStdio(stdin, stdout, stderr, () => {
    stdin?.destroy();
    stdout?.destroy();
    stderr?.destroy();
  });
}

/**
 * Whether the stdin of the process at the other end of SOCKET is /dev/null: the launch's input
 * is then empty from the start, and its EOF can go out with the request (ssh-client.ts
 * ExecOptions.inputEnded). Nothing is opened or read.
 */
export function callerInputEmpty(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    return isDevNull(statSync(`/proc/${pid}/fd/0`));
  } catch {
    return false;
  }
}

/**
 * The process at the other end of SOCKET (SO_PEERCRED), whose stdio openCallerStdio opens;
 * undefined when the kernel does not say.
 */
export function callerPid(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const pid = fd === undefined || fd < 0 ? undefined : peerPid(fd);
  return pid === undefined || pid <= 0 ? undefined : pid;
}

/** The streams opened, and which of the caller's descriptors that takes over. */
function callerStdio(stdin: Readable | undefined, stdout: Writable | undefined, stderr: Writable | undefined, destroy: () => void): CallerStdio {
  return {
    taken: { stdin: stdin !== undefined, stdout: stdout !== undefined, stderr: stderr !== undefined },
    ...(stdin === undefined ? {} : { stdin }),
    ...(stdout === undefined ? {} : { stdout }),
    ...(stderr === undefined ? {} : { stderr }),
    destroy,
  };
}

/**
 * One CallerStdio from two opened apart (the daemon opens the caller's output while its launch
 * request travels, its input only once the launch runs): each stream from the one that has it.
 */
export function combineCallerStdio(first: CallerStdio, second: CallerStdio): CallerStdio {
  return callerStdio(first.stdin ?? second.stdin, first.stdout ?? second.stdout, first.stderr ?? second.stderr, () => {
    first.destroy();
    second.destroy();
  });
}
