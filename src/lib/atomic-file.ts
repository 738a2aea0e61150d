// Crash-safe file replacement: readers see the old content or the new content, never a torn
// write. The data goes to a fresh temporary file in the same directory (O_EXCL, so nothing else's
// file is ever reused), is fsynced, renamed over the target, and the directory is fsynced so the
// rename itself survives a power loss.
import {
  closeSync,
  constants as fsConstants,
  fchmodSync,
  fsyncSync,
  linkSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EbpError, errnoCode } from './errors.js';
import { randomHex } from './random.js';

export interface WriteFileAtomicOptions {
  /**
   * Permission bits of the new file, applied exactly (not filtered by the umask).
   * Without it the file is created 0666 minus the umask.
   */
  readonly mode?: number;
  /**
   * Create only: fail with an EEXIST error instead of replacing an existing file. The complete
   * file appears at once (a hard link of the finished temporary file), so concurrent creators
   * cannot both win and nobody sees it half written.
   */
  readonly exclusive?: boolean;
}

const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL;

/** Errors fsync on a directory may give on filesystems that cannot sync directories. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EBADF', 'EPERM', 'EACCES']);

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomHex(6)}.tmp`);
}

function toBuffer(data: string | Buffer): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** Atomically replaces (or, with `exclusive`, creates) `path` with `data`. */
export async function writeFileAtomic(path: string, data: string | Buffer, options: WriteFileAtomicOptions = {}): Promise<void> {
  const temp = tempPathFor(path);
  const bytes = toBuffer(data);
  let created = false;
  try {
    const handle = await open(temp, CREATE_FLAGS, options.mode ?? 0o666);
    created = true;
    try {
      if (options.mode !== undefined) await handle.chmod(options.mode);
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.exclusive === true) {
      await link(temp, path);
      await unlink(temp);
    } else {
      await rename(temp, path);
    }
    created = false;
  } catch (error) {
    if (created) await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** The synchronous twin of {@link writeFileAtomic}, for start-up and exit paths. */
export function writeFileAtomicSync(path: string, data: string | Buffer, options: WriteFileAtomicOptions = {}): void {
  const temp = tempPathFor(path);
  const bytes = toBuffer(data);
  let created = false;
  try {
    const fd = openSync(temp, CREATE_FLAGS, options.mode ?? 0o666);
    created = true;
    try {
      if (options.mode !== undefined) fchmodSync(fd, options.mode);
      let offset = 0;
      while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (options.exclusive === true) {
      linkSync(temp, path);
      unlinkSync(temp);
    } else {
      renameSync(temp, path);
    }
    created = false;
  } catch (error) {
    if (created) {
      try {
        unlinkSync(temp);
      } catch {
        // The original error matters more than a leftover temporary file.
      }
    }
    throw error;
  }
  syncDirectorySync(dirname(path));
}

async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    await handle.sync();
  } catch (error) {
    if (!DIR_SYNC_UNSUPPORTED.has(errnoCode(error) ?? '')) throw error;
  } finally {
    await handle?.close();
  }
}

function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    fsyncSync(fd);
  } catch (error) {
    if (!DIR_SYNC_UNSUPPORTED.has(errnoCode(error) ?? '')) throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Reads a JSON state file: `fallback` when it does not exist, otherwise the result of `validate`
 * (which throws on a bad shape). Unreadable files, bad JSON and failed validation all become a
 * STATE_INVALID error that names the file and says how to get going again.
 */
export async function readJsonFile<T>(path: string, validate: (value: unknown) => T, fallback: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return fallback;
    throw new EbpError('STATE_INVALID', `cannot read ${path}: ${messageOf(error)}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw corrupt(path, `not valid JSON (${messageOf(error)})`, error);
  }
  try {
    return validate(value);
  } catch (error) {
    throw corrupt(path, messageOf(error), error);
  }
}

function corrupt(path: string, what: string, cause: unknown): EbpError {
  return new EbpError('STATE_INVALID', `${path} is corrupt: ${what}`, {
    cause,
    hint: `move it aside (mv ${path} ${path}.bad) to start over with an empty one, or restore it from a backup`,
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
