// The compiled seccomp program, cached on disk: compiling needs libseccomp through the FFI, which
// costs a one-shot `ebp sandbox` more than the rest of its start-up. Each cache file starts with
// its key: the rules, the options, the libseccomp library file and the architecture, written out
// in full and compared whole, so any change recompiles (and no hash, nor node:crypto, is needed).
import { closeSync, constants, fstatSync, mkdirSync, openSync, readdirSync, readSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../lib/atomic-file.js';
import { SECCOMP_RULES, type SeccompOptions } from './seccomp-rules.js';

const LIBRARY_CANDIDATES = ['/usr/lib/x86_64-linux-gnu/libseccomp.so.2', '/usr/lib/aarch64-linux-gnu/libseccomp.so.2', '/lib/x86_64-linux-gnu/libseccomp.so.2', '/usr/lib64/libseccomp.so.2', '/usr/lib/libseccomp.so.2'];
const FORMAT = 'ebp-seccomp-3';
const MAX_PROGRAM = 64 * 1024;
/** The key line and the program; the key is a few KiB of JSON. */
const MAX_FILE = MAX_PROGRAM + 256 * 1024;

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

/** What the program was compiled from, as one line of JSON (options spelled one way only). */
export function cacheKey(options: SeccompOptions): string {
  const allowPtrace = options.allowPtrace === true;
  return JSON.stringify({ FORMAT, rules: SECCOMP_RULES, options: { allowPtrace }, library: libraryIdentity(), arch: process.arch });
}

/**
 * A cached program is used only from a file we own that nobody else can write. Threat: a
 * writable cache file would let another account weaken every later sandbox's filter.
 */
function readCached(path: string, key: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const stat = fstatSync(fd);
    const uid = process.geteuid?.() ?? -1;
    if (!stat.isFile() || stat.uid !== uid || (stat.mode & 0o022) !== 0 || stat.size === 0 || stat.size > MAX_FILE) return undefined;
    const buffer = Buffer.alloc(stat.size);
    if (readSync(fd, buffer, 0, stat.size, 0) !== stat.size) return undefined;
    const header = Buffer.from(`${key}\n`);
    if (stat.size <= header.length || !buffer.subarray(0, header.length).equals(header)) return undefined;
    const program = buffer.subarray(header.length);
    return program.length % 8 === 0 && program.length <= MAX_PROGRAM ? program : undefined;
  } finally {
    closeSync(fd);
  }
}

/** The program from the cache folder, or compiled now (and cached when the folder is usable). */
export async function loadSeccompProgram(cacheDir: string | undefined, options: SeccompOptions = {}): Promise<Buffer> {
  const key = cacheKey(options);
  const file = cacheDir === undefined ? undefined : join(cacheDir, `seccomp-${options.allowPtrace === true ? 'ptrace' : 'default'}.bpf`);
  const cached = file === undefined ? undefined : readCached(file, key);
  if (cached !== undefined) return cached;
  const { seccompProgram } = await import('./seccomp.js');
  const program = seccompProgram(options);
  if (file !== undefined && cacheDir !== undefined) {
    try {
      mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      writeFileAtomicSync(file, Buffer.concat([Buffer.from(`${key}\n`), program]), { mode: 0o600 });
      // Caches of the earlier format (named by a hash of their key) are never read again.
      for (const name of readdirSync(cacheDir)) if (/^seccomp-[0-9a-f]{24}\.bpf$/.test(name)) rmSync(join(cacheDir, name), { force: true });
    } catch {
      // No cache: compiled again next time; nothing else is lost.
    }
  }
  return program;
}
