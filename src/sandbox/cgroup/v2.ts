// cgroup v2 backend: sandboxes are children `ebp-<name>` of the daemon's own (delegated) cgroup.
// v2 allows processes only in leaves, so the daemon first parks itself in `ebp-daemon`.
// cgroupfs calls are quick and never block on a disk: made synchronously (see v1.ts).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { EbpError, errnoCode } from '../../lib/errors.js';
import {
  CPU_PERIOD_USEC,
  KILL_TIMEOUT_MS,
  pollDelay,
  sweepStale,
  cgroupDirFor,
  cgroupError,
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

/** Controllers a sandbox uses when the parent offers them; memory and pids are mandatory. */
const WANTED = ['memory', 'pids', 'cpu', 'io'] as const;
const REQUIRED = ['memory', 'pids'] as const;
const DAEMON_LEAF = 'ebp-daemon';
const DELEGATE_FIX =
  'run the daemon under a systemd unit with Delegate=yes (or `systemd-run --user -p Delegate=yes ...`), ' +
  'or run `sudo ebp setup` and start the daemon inside the cgroup it prepares';

function splitWords(text: string | undefined): string[] {
  return (text ?? '').split(/\s+/).filter((word) => word !== '');
}

/** Find the unified hierarchy, our place in it, and whether memory+pids are delegated to us. */
export async function probeV2(mounts: readonly MountEntry[], lines: readonly CgroupLine[], root: string): Promise<Probe> {
  const candidates = mounts.filter((m) => m.fsType === 'cgroup2' && isUnder(m.mountPoint, root));
  if (candidates.length === 0) {
    return {
      ok: false,
      relevant: false,
      reason: `no cgroup2 filesystem is mounted under ${root}`,
      fix: 'boot with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1) or mount cgroup2',
    };
  }
  const own = lines.find((line) => line.hierarchyId === '0' && line.controllers.length === 0);
  if (own === undefined) {
    return {
      ok: false,
      relevant: false,
      reason: 'this process has no cgroup v2 membership (no "0::" line in /proc/self/cgroup)',
      fix: 'mount cgroup2 and run the daemon inside it',
    };
  }
  // Prefer the mount at the root itself (pure v2) over e.g. <root>/unified (hybrid).
  const ordered = [...candidates].sort((a, b) => a.mountPoint.length - b.mountPoint.length);
  let mount: MountEntry | undefined;
  let base: string | undefined;
  for (const candidate of ordered) {
    base = cgroupDirFor(candidate, own.path);
    if (base !== undefined) {
      mount = candidate;
      break;
    }
  }
  if (mount === undefined || base === undefined) {
    return {
      ok: false,
      relevant: false,
      reason: `own cgroup ${own.path} is not visible under any cgroup2 mount in ${root}`,
      fix: 'mount the cgroup2 hierarchy so that the daemon can see its own cgroup',
    };
  }
  const hierarchyControllers = splitWords(readOptional(join(mount.mountPoint, 'cgroup.controllers')));
  const relevant = hierarchyControllers.length > 0;
  const offered = readOptional(join(base, 'cgroup.controllers'));
  if (offered === undefined) {
    return { ok: false, relevant, reason: `cannot read ${join(base, 'cgroup.controllers')}`, fix: DELEGATE_FIX };
  }
  const available = splitWords(offered);
  const missing = REQUIRED.filter((controller) => !available.includes(controller));
  if (missing.length > 0) {
    return {
      ok: false,
      relevant,
      reason: `cgroup v2 controller(s) ${missing.join(', ')} not delegated to ${own.path} (${base}/cgroup.controllers has "${available.join(' ')}")`,
      fix: DELEGATE_FIX,
    };
  }
  const needWrite = [base, join(base, 'cgroup.subtree_control'), join(base, 'cgroup.procs')];
  for (const path of needWrite) {
    if (!(isWritable(path))) {
      return { ok: false, relevant, reason: `no write access to ${path}`, fix: DELEGATE_FIX };
    }
  }
  // The real root cgroup may hold processes and has no cgroup.type; a namespaced "/" is an
  // ordinary cgroup and needs the daemon moved out of it like any other.
  const trueRoot = own.path === '/' && !(exists(join(base, 'cgroup.type')));
  const controllers = WANTED.filter((controller) => available.includes(controller));
  return { ok: true, manager: new V2Manager(base, controllers, trueRoot) };
}

class V2Manager implements CgroupManager {
  readonly version = 'v2';
  private ready: Promise<void> | undefined;

  constructor(
    private readonly base: string,
    private readonly controllers: readonly string[],
    private readonly trueRoot: boolean,
  ) {}

  sweep(olderThanMs: number): number {
    return sweepStale(this.base, olderThanMs);
  }

  describe(): { base: string; controllers: readonly string[] } {
    return { base: this.base, controllers: this.controllers };
  }

  async create(name: string, limits: CgroupLimits): Promise<SandboxCgroup> {
    validateName(name);
    validateLimits(limits);
    await this.ensureReady();
    const dir = join(this.base, `ebp-${name}`);
    try {
      mkdirSync(dir);
    } catch (error) {
      if (errnoCode(error) === 'EEXIST') {
        throw new EbpError('STATE_INVALID', `cgroup ${dir} already exists`, {
          cause: error,
          hint: 'another sandbox uses this name, or a crashed daemon left it behind (remove it with rmdir)',
        });
      }
      throw cgroupError('create', dir, error, DELEGATE_FIX);
    }
    const sandbox = new V2Sandbox(name, dir);
    try {
      await this.applyLimits(dir, limits);
    } catch (error) {
      await sandbox.close().catch(() => undefined);
      throw error;
    }
    return sandbox;
  }

  private async applyLimits(dir: string, limits: CgroupLimits): Promise<void> {
    writeValue(join(dir, 'memory.max'), String(limits.memoryBytes));
    // No swap: a sandbox's memory limit must be a real limit, not a hint to start swapping.
    writeOptional(join(dir, 'memory.swap.max'), '0');
    // On OOM kill the whole sandbox, not one random process of it.
    writeOptional(join(dir, 'memory.oom.group'), '1');
    writeValue(join(dir, 'pids.max'), String(limits.pids));
    if (this.controllers.includes('cpu')) {
      writeValue(join(dir, 'cpu.max'), `${cpuQuotaUsec(limits.cpus)} ${CPU_PERIOD_USEC}`);
    }
    if (limits.ioWeight !== undefined && this.controllers.includes('io')) {
      writeOptional(join(dir, 'io.weight'), String(limits.ioWeight));
    }
  }

  /** Once per manager: park the daemon in a leaf and enable the controllers for children. */
  private ensureReady(): Promise<void> {
    this.ready ??= this.setUp().catch((error: unknown) => {
      this.ready = undefined; // let a later create() try again
      throw error;
    });
    return this.ready;
  }

  private async setUp(): Promise<void> {
    const subtree = join(this.base, 'cgroup.subtree_control');
    const enabled = splitWords(readOptional(subtree));
    const wanted = this.controllers.filter((controller) => !enabled.includes(controller));
    for (let attempt = 0; ; attempt++) {
      if (!this.trueRoot) await this.parkDaemon();
      if (wanted.length === 0) return;
      try {
        // Privileged boundary: this changes which controllers every child of our cgroup gets.
        // The kernel refuses (EBUSY) while any process is still in this inner node.
        writeValue(subtree, wanted.map((controller) => `+${controller}`).join(' '), DELEGATE_FIX);
        return;
      } catch (error) {
        if (attempt < 3 && error instanceof EbpError && errnoCode(error.cause) === 'EBUSY') continue;
        throw error;
      }
    }
  }

  /** Move every process of our cgroup (the daemon and its helpers) into the ebp-daemon leaf. */
  private async parkDaemon(): Promise<void> {
    const leaf = join(this.base, DAEMON_LEAF);
    try {
      mkdirSync(leaf);
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw cgroupError('create', leaf, error, DELEGATE_FIX);
    }
    const pids = parsePids(readOptional(join(this.base, 'cgroup.procs')));
    for (const pid of pids) {
      try {
        // The kernel takes one pid per write.
        writeValue(join(leaf, 'cgroup.procs'), String(pid), DELEGATE_FIX);
      } catch (error) {
        // A process that exited in the meantime is no obstacle.
        if (error instanceof EbpError && errnoCode(error.cause) === 'ESRCH') continue;
        throw error;
      }
    }
  }
}

class V2Sandbox implements SandboxCgroup {
  readonly version = 'v2';
  private closing: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly dir: string,
  ) {}

  async addProcess(pid: number): Promise<void> {
    validatePid(pid);
    await writeValueAsync(join(this.dir, 'cgroup.procs'), String(pid));
  }

  async stats(): Promise<CgroupStats> {
    const read = (file: string): string | undefined => readOptional(join(this.dir, file));
    const [current, peak, cpuStat, events, pids] = [
      read('memory.current'),
      read('memory.peak'),
      read('cpu.stat'),
      read('memory.events'),
      read('pids.current'),
    ];
    const memoryCurrentBytes = parseNumber(current);
    return {
      memoryCurrentBytes,
      // memory.peak appeared in Linux 5.19; before that the best lower bound is the current use.
      memoryPeakBytes: parseNumber(peak, memoryCurrentBytes),
      cpuUsageUsec: parseKeyed(cpuStat).get('usage_usec') ?? 0,
      oomKills: parseKeyed(events).get('oom_kill') ?? 0,
      pids: parseNumber(pids),
    };
  }

  async killAll(): Promise<void> {
    let attempt = 0;
    const killFile = join(this.dir, 'cgroup.kill');
    // cgroup.kill (Linux 5.14) kills atomically, including processes forking right now.
    const atomic = exists(killFile);
    const deadline = Date.now() + KILL_TIMEOUT_MS;
    for (;;) {
      if (!(await this.populated())) return;
      // Every round, not once: a process may have been moved in after an earlier kill.
      if (atomic) writeValue(killFile, '1');
      else for (const pid of parsePids(readOptional(join(this.dir, 'cgroup.procs')))) killPid(pid);
      if (Date.now() >= deadline) {
        throw new EbpError('CGROUP_UNAVAILABLE', `processes in ${this.dir} survived SIGKILL for ${KILL_TIMEOUT_MS} ms`, {
          hint: 'a process may be stuck in uninterruptible I/O; see cgroup.procs and /proc/<pid>/stack',
        });
      }
      await delay(pollDelay(attempt++));
    }
  }

  /** cgroup.events says whether anything (here or below) still runs; fall back to cgroup.procs. */
  private async populated(): Promise<boolean> {
    const populated = parseKeyed(readOptional(join(this.dir, 'cgroup.events'))).get('populated');
    if (populated !== undefined) return populated !== 0;
    return parsePids(readOptional(join(this.dir, 'cgroup.procs'))).length > 0;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.killAll();
      await removeCgroupDir(this.dir);
    })().catch((error: unknown) => {
      this.closing = undefined;
      throw error;
    });
    return this.closing;
  }
}
