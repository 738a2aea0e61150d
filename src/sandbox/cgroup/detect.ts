// Which cgroup version this machine lets us use, and the one-time root setup for an
// unprivileged daemon. Reads /proc only through options so tests can substitute fakes.
// /proc and cgroupfs: synchronous, as in v1.ts and v2.ts.
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { EbpError, errnoCode } from '../../lib/errors.js';
import {
  cgroupError,
  isUnder,
  parseMountInfo,
  parseProcCgroup,
  readOptional,
  writeValue,
  type ProbeFailure,
} from './files.js';
import type { CgroupDetection, DetectOptions } from './index.js';
import { V1_CONTROLLERS, probeV1, v1MountsFor } from './v1.js';
import { probeV2 } from './v2.js';

const DEFAULT_ROOT = '/sys/fs/cgroup';

function isRootUser(): boolean {
  return process.getuid?.() === 0;
}

async function readProc(path: string): Promise<string | { reason: string }> {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    return { reason: `cannot read ${path}: ${errnoCode(error) ?? String(error)}` };
  }
}

function normalizeRoot(root: string | undefined): string {
  const resolved = resolve(root ?? DEFAULT_ROOT);
  return resolved.length > 1 && resolved.endsWith('/') ? resolved.slice(0, -1) : resolved;
}

/** Detect what can be used: the preferred version first (v2 unless told otherwise), then the other. */
export async function detectCgroups(options: DetectOptions = {}): Promise<CgroupDetection> {
  const root = normalizeRoot(options.root);
  const procText = options.procSelfCgroup ?? (await readProc('/proc/self/cgroup'));
  const mountText = options.mountInfo ?? (await readProc('/proc/self/mountinfo'));
  for (const text of [procText, mountText]) {
    if (typeof text !== 'string') return { ok: false, reason: text.reason, fix: 'mount /proc (ebp needs it to find cgroups)' };
  }
  const lines = parseProcCgroup(procText as string);
  const mounts = parseMountInfo(mountText as string);

  const order: readonly ('v1' | 'v2')[] = options.prefer === 'v1' ? ['v1', 'v2'] : ['v2', 'v1'];
  const failures: ProbeFailure[] = [];
  for (const version of order) {
    const probe = version === 'v2' ? await probeV2(mounts, lines, root) : await probeV1(mounts, lines, root, isRootUser());
    if (probe.ok) return { ok: true, manager: probe.manager };
    failures.push(probe);
  }
  // Report the hierarchy that actually carries controllers here: on a hybrid system an empty
  // cgroup2 mount failing is expected and says nothing useful.
  const failure = failures.find((f) => f.relevant);
  if (failure !== undefined) return { ok: false, reason: failure.reason, fix: failure.fix };
  return {
    ok: false,
    reason: `no usable cgroup hierarchy under ${root} (${failures.map((f) => f.reason).join('; ')})`,
    fix: 'mount cgroup2 at /sys/fs/cgroup (systemd does this by default) or the v1 controllers memory, pids and cpu',
  };
}

/** Hand a cgroup directory and the files a delegate writes to uid:gid (as systemd's Delegate= does). */
async function delegate(dir: string, files: readonly string[], uid: number, gid: number): Promise<void> {
  for (const path of [dir, ...files.map((file) => join(dir, file))]) {
    try {
      chownSync(path, uid, gid);
    } catch (error) {
      if (path !== dir && errnoCode(error) === 'ENOENT') continue;
      throw cgroupError('chown', path, error);
    }
  }
}

async function makeDir(dir: string): Promise<void> {
  try {
    mkdirSync(dir);
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') throw cgroupError('create', dir, error);
  }
}

/**
 * One-time root setup (`ebp setup`): create `<mount>/ebp` in every v1 hierarchy we use and, when
 * the cgroup2 hierarchy has memory and pids, a delegated `<cgroup2>/ebp` subtree (the daemon must
 * then be started inside it). Each is chowned to uid:gid. Returns the directories prepared
 * (created now or already there). Idempotent.
 */
export async function prepareCgroups(options: { uid: number; gid: number; root?: string }): Promise<{ created: string[] }> {
  const { uid, gid } = options;
  if (!Number.isSafeInteger(uid) || uid < 0 || !Number.isSafeInteger(gid) || gid < 0) {
    throw new EbpError('USAGE', `invalid owner ${String(uid)}:${String(gid)} for cgroup directories`);
  }
  if (!isRootUser()) {
    throw new EbpError('PRIVILEGE_REQUIRED', 'preparing cgroups needs root', { hint: 'run `sudo ebp setup`' });
  }
  const root = normalizeRoot(options.root);
  const mountText = await readProc('/proc/self/mountinfo');
  if (typeof mountText !== 'string') throw new EbpError('CGROUP_UNAVAILABLE', mountText.reason);
  const mounts = parseMountInfo(mountText);
  const created: string[] = [];

  // v1: a top-level <mount>/ebp per hierarchy. Why root: only root may mkdir at a hierarchy's
  // top; after the chown the daemon creates (and therefore owns) the sandbox cgroups below.
  const seen = new Set<string>();
  for (const controller of V1_CONTROLLERS) {
    for (const mount of v1MountsFor(mounts, root, controller)) {
      if (mount.root !== '/' || seen.has(mount.mountPoint)) continue;
      seen.add(mount.mountPoint);
      const dir = join(mount.mountPoint, 'ebp');
      await makeDir(dir);
      await delegate(dir, ['cgroup.procs', 'tasks'], uid, gid);
      created.push(dir);
    }
  }

  // v2: a delegated subtree directly below the hierarchy root, with memory/pids/cpu/io available.
  const unified = mounts.find((mount) => mount.fsType === 'cgroup2' && mount.root === '/' && isUnder(mount.mountPoint, root));
  if (unified !== undefined) {
    const available = ((readOptional(join(unified.mountPoint, 'cgroup.controllers'))) ?? '').split(/\s+/);
    if (available.includes('memory') && available.includes('pids')) {
      const enable = ['memory', 'pids', 'cpu', 'io'].filter((controller) => available.includes(controller));
      // Why root: making controllers available below the hierarchy root is a system-wide switch.
      writeValue(join(unified.mountPoint, 'cgroup.subtree_control'), enable.map((c) => `+${c}`).join(' '));
      const dir = join(unified.mountPoint, 'ebp');
      // Its own subtree_control stays empty: the daemon is started inside it and only enables
      // controllers there after moving itself into a leaf (v2 forbids processes in inner nodes).
      await makeDir(dir);
      await delegate(dir, ['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'], uid, gid);
      created.push(dir);
    }
  }
  return { created };
}
