// The compiled seccomp program, cached on disk: compiling needs libseccomp through the FFI, which
// costs a one-shot `ebp sandbox` more than the rest of its start-up. The cache key covers the
// rules, the options, the libseccomp library file and the architecture, so any change recompiles.
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../lib/atomic-file.js';
import { SECCOMP_RULES, type SeccompOptions } from './seccomp-rules.js';

const LIBRARY_CANDIDATES = ['/usr/lib/x86_64-linux-gnu/libseccomp.so.2', '/usr/lib/aarch64-linux-gnu/libseccomp.so.2', '/lib/x86_64-linux-gnu/libseccomp.so.2', '/usr/lib64/libseccomp.so.2', '/usr/lib/libseccomp.so.2'];
const FORMAT = 'ebp-seccomp-1';
const MAX_PROGRAM = 64 * 1024;

function libraryIdentity(): string {
  for (const candidate of LIBRARY_CANDIDATES) {
    try {
      const real = realpathSync(candidate);
      const stat = statSync(real);
      return `${real}:${stat.size}:${stat.mtimeMs}`;
    } catch {
      // try the next place
    }
  }
  return 'unknown';
}

export function cacheKey(options: SeccompOptions): string {
  return createHash('sha256')
    .update(JSON.stringify({ FORMAT, rules: SECCOMP_RULES, options, library: libraryIdentity(), arch: process.arch }))
    .digest('hex')
    .slice(0, 24);
}

/**
 * A cached program is used only from a file we own that nobody else can write. Threat: a
 * writable cache file would let another account weaken every later sandbox's filter.
 */
function readCached(path: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const stat = fstatSync(fd);
    const uid = process.geteuid?.() ?? -1;
    if (!stat.isFile() || stat.uid !== uid || (stat.mode & 0o022) !== 0 || stat.size === 0 || stat.size > MAX_PROGRAM || stat.size % 8 !== 0) return undefined;
    const buffer = Buffer.alloc(stat.size);
    return readSync(fd, buffer, 0, stat.size, 0) === stat.size ? buffer : undefined;
  } finally {
    closeSync(fd);
  }
}

/** The program from the cache folder, or compiled now (and cached when the folder is usable). */
export async function loadSeccompProgram(cacheDir: string | undefined, options: SeccompOptions = {}): Promise<Buffer> {
  const file = cacheDir === undefined ? undefined : join(cacheDir, `seccomp-${cacheKey(options)}.bpf`);
  const cached = file === undefined ? undefined : readCached(file);
  if (cached !== undefined) return cached;
  const { seccompProgram } = await import('./seccomp.js');
  const program = seccompProgram(options);
  if (file !== undefined && cacheDir !== undefined) {
    try {
      mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      writeFileAtomicSync(file, program, { mode: 0o600 });
    } catch {
      // No cache: compiled again next time; nothing else is lost.
    }
  }
  return program;
}
