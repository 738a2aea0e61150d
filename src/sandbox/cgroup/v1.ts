// cgroup v1 backend: every controller is its own hierarchy (some co-mounted, e.g. "cpu,cpuacct"),
// so a sandbox is one `ebp-<name>` directory per hierarchy, all kept in step.
// cgroupfs calls are quick and never block on a disk: made synchronously, with no thread-pool
// hop (and no fs/promises to load in a one-shot `ebp sandbox`).
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { EbpError, errnoCode } from '../../lib/errors.js';
import {
  CPU_PERIOD_USEC,
  KILL_TIMEOUT_MS,
  pollDelay,
  sweepStale,
  cgroupDirFor,
  cgroupError,
  chownValue,
  cpuQuotaUsec,
  delay,
  exists,
  isUnder,
  isWritable,
  killPid,
  parseKeyed,
  parseNumber,
  parsePids,
  readOptional,
  removeCgroupDir,
  validateLimits,
  validateName,
  validatePid,
  writeOptional,
  writeValue,
  writeValueAsync,
  type CgroupLine,
  type MountEntry,
  type Probe,
} from './files.js';
import type { CgroupLimits, CgroupManager, CgroupStats, SandboxCgroup } from './index.js';

export const V1_CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'blkio', 'freezer'] as const;
type Controller = (typeof V1_CONTROLLERS)[number];
const REQUIRED: readonly Controller[] = ['memory', 'pids', 'cpu'];
const SETUP_FIX = 'run `sudo ebp setup` once (it prepares <controller>/ebp directories owned by the daemon user)';

/** One mounted hierarchy and the directory under which our sandboxes go. */
interface Hierarchy {
  readonly controllers: readonly Controller[];
  readonly base: string;
  /** The base may be created on first use (root running in its own cgroup). */
  readonly create: boolean;
}

/** The v1 mounts under root that carry `controller` (a super option names each bound controller). */
export function v1MountsFor(mounts: readonly MountEntry[], root: string, controller: string): MountEntry[] {
  return mounts.filter(
    (mount) => mount.fsType === 'cgroup' && isUnder(mount.mountPoint, root) && mount.superOptions.includes(controller),
  );
}

interface BaseCandidate {
  readonly path: string;
  readonly create: boolean;
}

async function usable(candidate: BaseCandidate): Promise<boolean> {
  if (exists(candidate.path)) return isWritable(candidate.path);
  return candidate.create && isWritable(dirname(candidate.path));
}

export async function probeV1(
  mounts: readonly MountEntry[],
  lines: readonly CgroupLine[],
  root: string,
  isRoot: boolean,
): Promise<Probe> {
  const byBase = new Map<string, { controllers: Controller[]; create: boolean }>();
  const notMounted: Controller[] = [];
  const notWritable: string[] = [];
  for (const controller of V1_CONTROLLERS) {
    const candidateMounts = v1MountsFor(mounts, root, controller);
    if (candidateMounts.length === 0) {
      notMounted.push(controller);
      continue;
    }
    const candidates: BaseCandidate[] = [];
    const own = lines.find((line) => line.controllers.includes(controller));
    if (isRoot && own !== undefined) {
      // As root, nest under our own cgroup so that limits set on the daemon's ancestors
      // (a systemd slice, a container) still bound every sandbox.
      for (const mount of candidateMounts) {
        const dir = cgroupDirFor(mount, own.path);
        if (dir !== undefined) candidates.push({ path: join(dir, 'ebp'), create: true });
      }
    }
    // Unprivileged: the top-level <mount>/ebp that `ebp setup` created and chowned to us.
    for (const mount of candidateMounts) {
      if (mount.root === '/') candidates.push({ path: join(mount.mountPoint, 'ebp'), create: isRoot });
    }
    let chosen: BaseCandidate | undefined;
    for (const candidate of candidates) {
      if (await usable(candidate)) {
        chosen = candidate;
        break;
      }
    }
    if (chosen === undefined) {
      notWritable.push(candidates[0]?.path ?? join(candidateMounts[0]?.mountPoint ?? root, 'ebp'));
      continue;
    }
    const entry = byBase.get(chosen.path) ?? { controllers: [], create: chosen.create };
    entry.controllers.push(controller);
    byBase.set(chosen.path, entry);
  }
  const relevant = notMounted.length < V1_CONTROLLERS.length;
  const missing = REQUIRED.filter((controller) => notMounted.includes(controller));
  if (missing.length > 0) {
    return {
      ok: false,
      relevant,
      reason: `cgroup v1 controller(s) ${missing.join(', ')} not mounted under ${root}`,
      fix: 'mount the cgroup v1 controllers memory, pids and cpu, or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)',
    };
  }
  const hierarchies: Hierarchy[] = [...byBase].map(([base, entry]) => ({ base, ...entry }));
  const have = new Set(hierarchies.flatMap((hierarchy) => hierarchy.controllers));
  const unusable = REQUIRED.filter((controller) => !have.has(controller));
  if (unusable.length > 0) {
    return {
      ok: false,
      relevant,
      reason: `cannot create cgroups for ${unusable.join(', ')}: no write access to ${notWritable.join(', ')}`,
      fix: SETUP_FIX,
    };
  }
  return { ok: true, manager: new V1Manager(hierarchies) };
}

/** v2-style io weight (1..10000, default 100) → blkio.weight (10..1000, default 500). */
function blkioWeight(ioWeight: number): number {
  return Math.min(1000, Math.max(10, Math.round(ioWeight * 5)));
}

/** v2-style io weight → blkio.bfq.weight (1..1000, default 100, same scale as io.weight). */
function bfqWeight(ioWeight: number): number {
  return Math.min(1000, Math.max(1, ioWeight));
}

class V1Manager implements CgroupManager {
  readonly version = 'v1';
  private ready: Promise<void> | undefined;

  constructor(private readonly hierarchies: readonly Hierarchy[]) {}

  describe(): { base: string; controllers: readonly string[] } {
    return {
      base: this.hierarchies.map((hierarchy) => `${hierarchy.controllers.join(',')}=${hierarchy.base}`).join(' '),
      controllers: V1_CONTROLLERS.filter((controller) => this.hierarchies.some((h) => h.controllers.includes(controller))),
    };
  }

  sweep(olderThanMs: number): number {
    return this.hierarchies.reduce((sum, hierarchy) => sum + sweepStale(hierarchy.base, olderThanMs), 0);
  }

  private ensureBases(): Promise<void> {
    this.ready ??= (async () => {
      for (const hierarchy of this.hierarchies) {
        if (!hierarchy.create) continue;
        try {
          // Privileged boundary: as root we create <own cgroup>/ebp in every hierarchy.
          mkdirSync(hierarchy.base, { recursive: true });
        } catch (error) {
          throw cgroupError('create', hierarchy.base, error, SETUP_FIX);
        }
      }
    })().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  async create(name: string, limits: CgroupLimits): Promise<SandboxCgroup> {
    validateName(name);
    validateLimits(limits);
    await this.ensureBases();
    const dirs = new Map<Controller, string>();
    const created: string[] = [];
    const sandbox = new V1Sandbox(name, dirs, created);
    try {
      for (const hierarchy of this.hierarchies) {
        const dir = join(hierarchy.base, `ebp-${name}`);
        try {
          mkdirSync(dir);
        } catch (error) {
          if (errnoCode(error) === 'EEXIST') {
            throw new EbpError('STATE_INVALID', `cgroup ${dir} already exists`, {
              cause: error,
              hint: 'another sandbox uses this name, or a crashed daemon left it behind (remove it with rmdir)',
            });
          }
          throw cgroupError('create', dir, error, SETUP_FIX);
        }
        created.push(dir);
        for (const controller of hierarchy.controllers) dirs.set(controller, dir);
      }
      await applyLimits(dirs, limits);
    } catch (error) {
      await sandbox.close().catch(() => undefined);
      throw error;
    }
    return sandbox;
  }
}

async function applyLimits(dirs: ReadonlyMap<Controller, string>, limits: CgroupLimits): Promise<void> {
  const memory = dirs.get('memory');
  const pids = dirs.get('pids');
  const cpu = dirs.get('cpu');
  const blkio = dirs.get('blkio');
  if (memory === undefined || pids === undefined || cpu === undefined) {
    throw new EbpError('INTERNAL', 'cgroup v1 sandbox without memory, pids or cpu hierarchy');
  }
  const bytes = String(limits.memoryBytes);
  // memory.limit_in_bytes first: the kernel insists memsw (memory+swap) >= memory.
  writeValue(join(memory, 'memory.limit_in_bytes'), bytes);
  // The same value for memory+swap means no swap at all (file exists only with swap accounting).
  writeOptional(join(memory, 'memory.memsw.limit_in_bytes'), bytes);
  try {
    writeValue(join(memory, 'memory.swappiness'), '0');
  } catch {
    // Only a preference on top of memsw; some kernels refuse it below a hierarchy root.
  }
  writeValue(join(pids, 'pids.max'), String(limits.pids));
  writeValue(join(cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_USEC));
  writeValue(join(cpu, 'cpu.cfs_quota_us'), String(cpuQuotaUsec(limits.cpus)));
  if (limits.ioWeight !== undefined && blkio !== undefined) {
    // CFQ's blkio.weight is gone since Linux 5.0; BFQ offers blkio.bfq.weight instead.
    if (exists(join(blkio, 'blkio.weight'))) {
      writeValue(join(blkio, 'blkio.weight'), String(blkioWeight(limits.ioWeight)));
    } else {
      writeOptional(join(blkio, 'blkio.bfq.weight'), String(bfqWeight(limits.ioWeight)));
    }
  }
}

class V1Sandbox implements SandboxCgroup {
  readonly version = 'v1';
  private closing: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly dirs: ReadonlyMap<Controller, string>,
    /** One directory per hierarchy, in creation order. */
    private readonly hierarchyDirs: readonly string[],
  ) {}

  async addProcess(pid: number): Promise<void> {
    validatePid(pid);
    // One after the other: the first waits for the kernel's grace period, the rest do not.
    for (const dir of this.hierarchyDirs) await writeValueAsync(join(dir, 'cgroup.procs'), String(pid));
  }

  selfJoinFiles(owner?: { readonly uid: number; readonly gid: number }): readonly string[] {
    const files = this.hierarchyDirs.map((dir) => join(dir, 'tasks'));
    // This cgroup's own `tasks` only: a process can move itself into this sandbox's cgroup, and
    // nowhere else (the sandbox inside sees no cgroupfs at all).
    if (owner !== undefined) for (const file of files) chownValue(file, owner.uid, owner.gid);
    return files;
  }

  async stats(): Promise<CgroupStats> {
    const read = (controller: Controller, file: string): string | undefined => {
      const dir = this.dirs.get(controller);
      return dir === undefined ? undefined : readOptional(join(dir, file));
    };
    const [current, peak, oomControl, cpuNs, pids] = [
      read('memory', 'memory.usage_in_bytes'),
      read('memory', 'memory.max_usage_in_bytes'),
      read('memory', 'memory.oom_control'),
      read('cpuacct', 'cpuacct.usage'),
      read('pids', 'pids.current'),
    ];
    return {
      memoryCurrentBytes: parseNumber(current),
      memoryPeakBytes: parseNumber(peak),
      cpuUsageUsec: Math.floor(parseNumber(cpuNs) / 1000),
      // "oom_kill N" is in memory.oom_control since Linux 4.13.
      oomKills: parseKeyed(oomControl).get('oom_kill') ?? 0,
      pids: parseNumber(pids),
    };
  }

  /** Every pid in any of our hierarchies (normally all are in all of them). */
  private async members(): Promise<number[]> {
    const all = new Set<number>();
    for (const dir of this.hierarchyDirs) {
      for (const pid of parsePids(readOptional(join(dir, 'cgroup.procs')))) all.add(pid);
    }
    return [...all];
  }

  async killAll(): Promise<void> {
    let attempt = 0;
    const freezer = this.dirs.get('freezer');
    const deadline = Date.now() + KILL_TIMEOUT_MS;
    for (;;) {
      if ((await this.members()).length === 0) return;
      if (freezer !== undefined) await this.freeze(freezer, deadline);
      try {
        // Frozen, nothing in here can fork, so this list is complete; the kills land on thaw.
        for (const pid of await this.members()) killPid(pid);
      } finally {
        if (freezer !== undefined) writeOptional(join(freezer, 'freezer.state'), 'THAWED');
      }
      if (Date.now() >= deadline) {
        throw new EbpError(
          'CGROUP_UNAVAILABLE',
          `processes in ${this.hierarchyDirs.join(', ')} survived SIGKILL for ${KILL_TIMEOUT_MS} ms`,
          { hint: 'a process may be stuck in uninterruptible I/O; see cgroup.procs and /proc/<pid>/stack' },
        );
      }
      await delay(pollDelay(attempt++));
    }
  }

  /** Ask for FROZEN and wait (briefly) until the kernel reports it; stragglers are killed anyway. */
  private async freeze(dir: string, deadline: number): Promise<void> {
    let attempt = 0;
    const state = join(dir, 'freezer.state');
    if (!(writeOptional(state, 'FROZEN'))) return;
    const until = Math.min(deadline, Date.now() + 500);
    while (Date.now() < until) {
      if ((readOptional(state))?.trim() !== 'FREEZING') return;
      await delay(pollDelay(attempt++));
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.killAll();
      for (const dir of this.hierarchyDirs) await removeCgroupDir(dir);
    })().catch((error: unknown) => {
      this.closing = undefined;
      throw error;
    });
    return this.closing;
  }
}
