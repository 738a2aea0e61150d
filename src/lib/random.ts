// Random bytes straight from the kernel's generator (/dev/urandom, the same one getrandom(2)
// serves), for names and ids on paths that should not load node:crypto: that module costs a
// one-shot `ebp sandbox` about 1.5 ms, more than the rest of its names and ids together.
import { closeSync, openSync, readSync } from 'node:fs';

export function randomBytesSync(length: number): Buffer {
  const out = Buffer.alloc(length);
  const fd = openSync('/dev/urandom', 'r');
  try {
    let filled = 0;
    while (filled < length) {
      const got = readSync(fd, out, filled, length - filled, null);
      if (got <= 0) throw new Error('/dev/urandom gave no bytes');
      filled += got;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** `bytes` random bytes as lower-case hex (twice as many characters). */
export function randomHex(bytes: number): string {
  return randomBytesSync(bytes).toString('hex');
}
