// File descriptors that would survive exec, read from /proc (no FFI), and closing the ones a
// process inherited from whoever started it.
import { closeSync, readdirSync, readFileSync, type Stats } from 'node:fs';

/** open(2)'s O_CLOEXEC on Linux (node:fs does not export it). */
export const O_CLOEXEC = 0o2000000;

/** makedev(1, 3): the device number of /dev/null. */
const DEV_NULL = 0x103;

/** Whether what STATS describe is /dev/null (a character device, but no terminal and no data). */
export function isDevNull(stats: Stats): boolean {
  return stats.isCharacterDevice() && stats.rdev === DEV_NULL;
}

/** Descriptors above stderr of a process (this one by default) that a program it starts would get. */
export function inheritableDescriptors(pid: number | 'self' = 'self'): number[] {
  const open: number[] = [];
  for (const name of readdirSync(`/proc/${pid}/fdinfo`)) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    try {
      const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${name}`, 'utf8'))?.[1];
      if (flags !== undefined && (parseInt(flags, 8) & O_CLOEXEC) === 0) open.push(fd);
    } catch {
      // closed meanwhile
    }
  }
  return open;
}

/**
 * Closes the descriptors above stderr that this process inherited without close-on-exec. Threat:
 * whatever started us (a terminal multiplexer, a CI runner, a service manager) would otherwise
 * pass them through bwrap into every sandbox. ebp never uses them, and every descriptor it opens
 * itself is close-on-exec (the pty master included), so what is found here was inherited. Closing
 * needs no FFI, which costs a one-shot `ebp sandbox` milliseconds to load. Node's IPC channel, if
 * any, stays.
 */
export function closeInherited(): number[] {
  const ipc = Number(process.env['NODE_CHANNEL_FD'] ?? -1);
  const closed: number[] = [];
  for (const fd of inheritableDescriptors()) {
    if (fd === ipc) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      // gone meanwhile
    }
  }
  return closed;
}
