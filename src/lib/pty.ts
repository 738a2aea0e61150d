// Pseudo-terminals without a native addon: posix_openpt/grantpt/unlockpt/ptsname_r through koffi,
// resizing with TIOCSWINSZ. The master end becomes a Node stream; the slave end is handed to the
// sandbox as its stdin/stdout/stderr and controlling terminal.
import { closeSync, constants, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import { ReadStream } from 'node:tty';
import koffi from 'koffi';
import { O_CLOEXEC } from './descriptors.js';

interface PtyCalls {
  posixOpenpt: (flags: number) => number;
  grantpt: (fd: number) => number;
  unlockpt: (fd: number) => number;
  ptsnameR: (fd: number, buffer: Buffer, length: number) => number;
  setWinsize: (fd: number, size: { ws_row: number; ws_col: number; ws_xpixel: number; ws_ypixel: number }) => number;
}

let calls: PtyCalls | undefined;
const TIOCSWINSZ = 0x5414;

function load(): PtyCalls {
  if (calls !== undefined) return calls;
  const lib = koffi.load('libc.so.6');
  const winsize = koffi.struct('ebp_winsize', { ws_row: 'uint16', ws_col: 'uint16', ws_xpixel: 'uint16', ws_ypixel: 'uint16' });
  const ioctl = lib.func('int ioctl(int fd, unsigned long request, ...)') as (...args: unknown[]) => number;
  calls = {
    posixOpenpt: lib.func('int posix_openpt(int flags)') as PtyCalls['posixOpenpt'],
    grantpt: lib.func('int grantpt(int fd)') as PtyCalls['grantpt'],
    unlockpt: lib.func('int unlockpt(int fd)') as PtyCalls['unlockpt'],
    ptsnameR: lib.func('int ptsname_r(int fd, _Out_ uint8_t *buf, size_t buflen)') as PtyCalls['ptsnameR'],
    setWinsize: (fd, size) => ioctl(fd, TIOCSWINSZ, koffi.pointer(winsize), size),
  };
  return calls;
}

export interface TerminalSize {
  readonly cols: number;
  readonly rows: number;
}

export interface Pty {
  /** The master end as a duplex stream: write = keyboard input, read = screen output. */
  readonly master: Socket;
  /** Descriptor of the slave end, to pass as a child's stdio; close it after spawning. */
  readonly slaveFd: number;
  readonly path: string;
  resize(size: TerminalSize): void;
  /** Closes the slave descriptor held by this process (idempotent). */
  closeSlave(): void;
}

export function openPty(size?: TerminalSize): Pty {
  const libc = load();
  // Close-on-exec: a master left open across exec would reach every process the daemon starts
  // later, and through bwrap another person's sandbox could read and type into this terminal.
  const masterFd = libc.posixOpenpt(constants.O_RDWR | constants.O_NOCTTY | O_CLOEXEC);
  if (masterFd < 0) throw new Error(`posix_openpt failed (errno ${koffi.errno()})`);
  const buffer = Buffer.alloc(128);
  if (libc.grantpt(masterFd) !== 0 || libc.unlockpt(masterFd) !== 0 || libc.ptsnameR(masterFd, buffer, buffer.length) !== 0) {
    const errno = koffi.errno();
    closeSync(masterFd);
    throw new Error(`cannot set up a pseudo-terminal (errno ${errno})`);
  }
  const path = buffer.toString('utf8', 0, buffer.indexOf(0));
  const slaveFd = openSync(path, constants.O_RDWR | constants.O_NOCTTY);
  const resize = (next: TerminalSize): void => {
    const rows = clampDimension(next.rows);
    const cols = clampDimension(next.cols);
    libc.setWinsize(masterFd, { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 });
  };
  if (size !== undefined) resize(size);
  // A tty.ReadStream is a net.Socket over libuv's TTY handle, which both reads and writes.
  const master: Socket = new ReadStream(masterFd);
  // EIO on the master means every slave descriptor is closed: the terminal's session is over.
  master.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EIO') throw error;
    master.destroy();
  });
  let slaveOpen = true;
  return {
    master,
    slaveFd,
    path,
    resize,
    closeSlave() {
      if (!slaveOpen) return;
      slaveOpen = false;
      closeSync(slaveFd);
    },
  };
}

function clampDimension(value: number): number {
  return Number.isInteger(value) && value > 0 ? Math.min(value, 10_000) : 24;
}
