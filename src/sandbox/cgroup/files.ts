// Shared helpers for the cgroup backends: guarded file I/O on cgroupfs, the /proc parsers,
// name and limit validation. Every failure leaves here as an EbpError naming the file and errno.
// Synchronous calls on purpose: cgroupfs operations are in-kernel and take microseconds, while a
// trip through libuv's thread pool costs 0.1-0.8 ms each on a loaded machine, on every launch.
// One exception: moving a process in by its pid can wait milliseconds for an RCU grace period
// (SandboxCgroup.selfJoinFiles), so that write goes through the thread pool (writeValueAsync).
import { accessSync, chownSync, constants, readFileSync, readdirSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
/** Waits MS milliseconds (a plain timer: node:timers/promises is one more module to load). */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

import { EbpError, errnoCode } from '../../lib/errors.js';
import type { CgroupLimits, CgroupManager } from './index.js';

export const DEFAULT_HINT = 'run `ebp doctor` to see which cgroup hierarchy is usable';

/** How long killAll waits for a cgroup to empty before giving up. */
export const KILL_TIMEOUT_MS = 5000;
export const POLL_MS = 10;

/** Polling intervals while waiting for a cgroup to empty: quick first, then backing off. */
export function pollDelay(attempt: number): number {
  return Math.min(POLL_MS, 2 ** attempt);
}

export { delay };

function describeErrno(error: unknown): string {
  const code = errnoCode(error);
  if (code === undefined) return error instanceof Error ? error.message : String(error);
  const text = error instanceof Error ? error.message : '';
  // Node's messages look like "EBUSY: resource busy or locked, open '/x'": keep the middle part.
  const detail = /^[A-Z]+: ([^,]+)/.exec(text)?.[1];
  return detail === undefined ? code : `${code} (${detail})`;
}

export function cgroupError(action: string, path: string, error: unknown, hint: string = DEFAULT_HINT): EbpError {
  return new EbpError('CGROUP_UNAVAILABLE', `cannot ${action} ${path}: ${describeErrno(error)}`, {
    cause: error,
    hint,
  });
}

export function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return false;
    throw cgroupError('stat', path, error);
  }
}

export function isWritable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw cgroupError('read', path, error);
  }
}

/** Read a file that may legitimately be absent (older kernels, or a cgroup already removed). */
export function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENODEV') return undefined;
    throw cgroupError('read', path, error);
  }
}

/**
 * Write one value to a cgroup control file. On cgroupfs the file always exists (the kernel
 * creates it with the directory); on a plain filesystem (the test fixtures) this creates it.
 */
export function writeValue(path: string, value: string, hint?: string): void {
  try {
    writeFileSync(path, value);
  } catch (error) {
    throw cgroupError(`write "${value}" to`, path, error, hint);
  }
}

/** writeValue through the thread pool: for a write that may block (a process moved in by pid). */
export async function writeValueAsync(path: string, value: string, hint?: string): Promise<void> {
  try {
    await writeFile(path, value);
  } catch (error) {
    throw cgroupError(`write "${value}" to`, path, error, hint);
  }
}

/** Give one control file to UID:GID (a process of that user then writes it). */
export function chownValue(path: string, uid: number, gid: number): void {
  try {
    chownSync(path, uid, gid);
  } catch (error) {
    throw cgroupError(`give to ${uid}:${gid}`, path, error);
  }
}

/**
 * Like writeValue, but a control file the kernel does not provide (no swap accounting, an older
 * kernel) is skipped and reported as false. cgroupfs refuses to create files, so a failed write
 * to a missing file is recognised by checking that the file really is not there.
 */
export function writeOptional(path: string, value: string, hint?: string): boolean {
  try {
    writeFileSync(path, value);
    return true;
  } catch (error) {
    if (!(exists(path))) return false;
    throw cgroupError(`write "${value}" to`, path, error, hint);
  }
}

/** Remove a cgroup directory; already gone is fine. Retries briefly while the kernel reports EBUSY. */
export async function removeCgroupDir(path: string, timeoutMs = 2000): Promise<void> {
  let attempt = 0;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      rmdirSync(path);
      return;
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'ENOENT') return;
      if (code === 'ENOTEMPTY') {
        // cgroupfs never answers ENOTEMPTY (a busy cgroup is EBUSY), so this is a directory on an
        // ordinary filesystem standing in for one (the fake trees in tests): clear its plain files.
        removePlainFiles(path);
        try {
          rmdirSync(path);
          return;
        } catch (retryError) {
          if (errnoCode(retryError) === 'ENOENT') return;
          throw cgroupError('remove', path, retryError);
        }
      }
      if (code === 'EBUSY' && Date.now() < deadline) {
        await delay(pollDelay(attempt++));
        continue;
      }
      throw cgroupError('remove', path, error, 'processes may still be running in it, or it has child cgroups');
    }
  }
}

function removePlainFiles(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile()) unlinkSync(join(dir, entry.name));
  }
}

/** "a 1\nb 2" → Map { a → 1, b → 2 } (memory.events, cpu.stat, memory.oom_control ...). */
export function parseKeyed(text: string | undefined): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key === undefined || key === '' || value === undefined) continue;
    const number = Number(value);
    if (Number.isFinite(number)) result.set(key, number);
  }
  return result;
}

/** A single-number file ("123\n"); absent, "max" or garbage → fallback. */
export function parseNumber(text: string | undefined, fallback = 0): number {
  if (text === undefined) return fallback;
  const number = Number(text.trim());
  return text.trim() !== '' && Number.isFinite(number) ? number : fallback;
}

/** cgroup.procs → pids. */
export function parsePids(text: string | undefined): number[] {
  const pids: number[] = [];
  for (const line of (text ?? '').split('\n')) {
    const pid = Number(line.trim());
    if (line.trim() !== '' && Number.isSafeInteger(pid) && pid > 0) pids.push(pid);
  }
  return pids;
}

/** SIGKILL, where "already gone" is success. */
export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if (errnoCode(error) !== 'ESRCH') throw cgroupError('kill process', String(pid), error);
  }
}

export function validatePid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new EbpError('USAGE', `invalid process id ${String(pid)}`);
  }
}

const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** `ebp-daemon` is where the v2 backend parks the daemon itself, so no sandbox may be called that. */
const RESERVED_NAMES = new Set(['daemon']);

/** Names become directory names under cgroupfs: no slashes, dots or anything else surprising. */
export function validateName(name: string): void {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new EbpError('USAGE', `invalid cgroup name ${JSON.stringify(name)}`, {
      hint: 'use 1 to 64 characters from A-Z, a-z, 0-9, "_" and "-"',
    });
  }
  if (RESERVED_NAMES.has(name)) {
    throw new EbpError('USAGE', `cgroup name "${name}" is reserved`, { hint: 'pick another name' });
  }
}

/** Reject limits the kernel would refuse or misread, before anything is created. */
export function validateLimits(limits: CgroupLimits): void {
  const bad = (what: string, value: unknown, rule: string): EbpError =>
    new EbpError('USAGE', `invalid cgroup limit ${what}=${String(value)}: ${rule}`);
  if (!Number.isSafeInteger(limits.memoryBytes) || limits.memoryBytes <= 0) {
    throw bad('memoryBytes', limits.memoryBytes, 'must be a positive whole number of bytes');
  }
  if (!Number.isSafeInteger(limits.pids) || limits.pids <= 0) {
    throw bad('pids', limits.pids, 'must be a positive whole number');
  }
  if (!Number.isFinite(limits.cpus) || limits.cpus <= 0) {
    throw bad('cpus', limits.cpus, 'must be a positive number of cores');
  }
  const io = limits.ioWeight;
  if (io !== undefined && (!Number.isSafeInteger(io) || io < 1 || io > 10000)) {
    throw bad('ioWeight', io, 'must be a whole number from 1 to 10000');
  }
}

export const CPU_PERIOD_USEC = 100_000;

/** cpus → CFS quota per 100 ms period; the kernel refuses quotas under 1 ms. */
export function cpuQuotaUsec(cpus: number): number {
  return Math.max(1000, Math.round(cpus * CPU_PERIOD_USEC));
}

export interface CgroupLine {
  readonly hierarchyId: string;
  /** Controllers of a v1 hierarchy ("cpu", "cpuacct", "name=systemd"); empty for v2. */
  readonly controllers: readonly string[];
  readonly path: string;
}

/** /proc/self/cgroup: "4:memory:/a/b", "0::/user.slice/x.service". */
export function parseProcCgroup(text: string): CgroupLine[] {
  const lines: CgroupLine[] = [];
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    lines.push({
      hierarchyId: line.slice(0, first),
      controllers: controllers === '' ? [] : controllers.split(','),
      path: line.slice(second + 1),
    });
  }
  return lines;
}

export interface MountEntry {
  /** Which part of the hierarchy is mounted there ("/" unless bind-mounted or namespaced). */
  readonly root: string;
  readonly mountPoint: string;
  readonly fsType: string;
  readonly superOptions: readonly string[];
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** /proc/self/mountinfo: "36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory". */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const separator = line.indexOf(' - ');
    if (separator < 0) continue;
    const left = line.slice(0, separator).split(' ');
    const right = line.slice(separator + 3).split(' ');
    const root = left[3];
    const mountPoint = left[4];
    const fsType = right[0];
    if (root === undefined || mountPoint === undefined || fsType === undefined) continue;
    entries.push({
      root: unescapeMountField(root),
      mountPoint: unescapeMountField(mountPoint),
      fsType,
      superOptions: (right[2] ?? '').split(','),
    });
  }
  return entries;
}

/** Is `path` the directory `dir` or below it? Both absolute, without trailing slashes. */
export function isUnder(path: string, dir: string): boolean {
  const base = dir.endsWith('/') ? dir.slice(0, -1) : dir;
  return path === base || path.startsWith(`${base}/`);
}

/**
 * Where a process's cgroup path (from /proc/self/cgroup, relative to the hierarchy root) lives in
 * the filesystem, given a mount of that hierarchy. undefined when the mount does not show it.
 */
export function cgroupDirFor(mount: MountEntry, cgroupPath: string): string | undefined {
  if (!isUnder(cgroupPath, mount.root)) return undefined;
  const relative = mount.root === '/' ? cgroupPath : cgroupPath.slice(mount.root.length);
  const joined = join(mount.mountPoint, relative);
  return joined.endsWith('/') && joined !== '/' ? joined.slice(0, -1) : joined;
}

/** What probing one cgroup version found: a manager, or why not (and whether that matters). */
export type Probe = { readonly ok: true; readonly manager: CgroupManager } | ProbeFailure;
export interface ProbeFailure {
  readonly ok: false;
  readonly reason: string;
  readonly fix: string;
  /** This hierarchy carries controllers here, so its failure is the one worth reporting. */
  readonly relevant: boolean;
}

/**
 * Removes sandbox cgroups left behind by a daemon that was killed (SIGKILL leaves no time to
 * clean up): `ebp-s-*` folders under `base` that hold no process and are older than
 * `olderThanMs` (young ones may belong to another daemon's sandbox that is just starting).
 * Returns how many were removed.
 */
export function sweepStale(base: string, olderThanMs: number): number {
  let removed = 0;
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return 0;
  }
  for (const name of entries) {
    if (!/^ebp-s-[0-9a-f]{12}$/.test(name)) continue;
    const dir = join(base, name);
    try {
      if (Date.now() - statSync(dir).mtimeMs < olderThanMs) continue;
      if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() !== '') continue;
      rmdirSync(dir);
      removed += 1;
    } catch {
      // busy, gone, or not ours to remove: leave it
    }
  }
  return removed;
}
