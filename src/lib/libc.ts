// The few libc calls Node does not expose, through koffi. Loaded lazily: only the code paths that
// need them pay for the FFI.
import koffi from 'koffi';

interface Libc {
  ioctl: (fd: number, request: number) => number;
  getsockopt: (fd: number, level: number, name: number, out: Buffer, length: number[]) => number;
  errno: () => number;
  schedYield: () => number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc !== undefined) return libc;
  const lib = koffi.load('libc.so.6');
  const ioctl = lib.func('int ioctl(int fd, unsigned long request, ...)') as (...args: unknown[]) => number;
  const getsockopt = lib.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)') as Libc['getsockopt'];
  libc = {
    ioctl: (fd, request) => ioctl(fd, request),
    getsockopt,
    errno: () => koffi.errno(),
    schedYield: lib.func('int sched_yield(void)') as Libc['schedYield'],
  };
  return libc;
}

/** ioctl(2) with no argument; returns the result or throws with errno. */
export function ioctlNoArg(fd: number, request: number, what: string): number {
  const { ioctl, errno } = load();
  const result = ioctl(fd, request);
  if (result < 0) {
    const error = new Error(`${what}: ioctl failed (errno ${errno()})`) as NodeJS.ErrnoException;
    error.errno = errno();
    throw error;
  }
  return result;
}

/** NS_GET_USERNS: a new descriptor for the user namespace that owns a namespace descriptor. */
export const NS_GET_USERNS = 0xb701;

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

/** The process id at the other end of a connected Unix socket (SO_PEERCRED), or undefined. */
export function peerPid(fd: number): number | undefined {
  try {
    const { getsockopt } = load();
    const ucred = Buffer.alloc(12);
    const length = [ucred.length];
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ucred, length) !== 0 || (length[0] ?? 0) < 4) return undefined;
    return ucred.readInt32LE(0);
  } catch {
    // No FFI here: the caller keeps the slower path.
    return undefined;
  }
}

let schedYield: (() => number) | null | undefined;

/** sched_yield(2): lets another process ready on this CPU run first. Without the FFI, nothing. */
export function yieldCpu(): void {
  if (schedYield === undefined) {
    try {
      schedYield = load().schedYield;
    } catch {
      schedYield = null;
    }
  }
  schedYield?.();
}
