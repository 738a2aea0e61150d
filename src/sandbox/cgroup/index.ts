// Per-sandbox cgroups: one interface over cgroup v1 (a hierarchy per controller) and v2 (one
// unified tree). detectCgroups picks what this machine can use; prepareCgroups is the one-time
// root step that lets an unprivileged daemon create sandbox cgroups.

export interface CgroupLimits {
  readonly memoryBytes: number;
  readonly pids: number;
  /** CPU time as a number of cores, e.g. 1.5. */
  readonly cpus: number;
  /** 1..10000 as in v2 io.weight (100 = default); scaled for v1 blkio. Omitted: left at default. */
  readonly ioWeight?: number;
}

export interface CgroupStats {
  readonly memoryCurrentBytes: number;
  readonly memoryPeakBytes: number;
  readonly cpuUsageUsec: number;
  readonly oomKills: number;
  readonly pids: number;
}

export interface SandboxCgroup {
  readonly version: 'v1' | 'v2';
  readonly name: string;
  /** Move a process in (writes cgroup.procs of every controller). */
  addProcess(pid: number): Promise<void>;
  /**
   * Where a single-threaded process moves itself in, by writing "0" (this thread) to each file
   * (v1: every hierarchy's `tasks`), given to OWNER first when one is named; undefined where it
   * cannot (v2 moves whole processes only: addProcess). Moving a process by its pid takes the
   * kernel's system-wide threadgroup lock, which waits for an RCU grace period (8-18 ms on the
   * test machine, for every sandbox); a thread moving itself is spared that lock.
   */
  selfJoinFiles?(owner?: { readonly uid: number; readonly gid: number }): readonly string[];
  stats(): Promise<CgroupStats>;
  /**
   * Kill every process in it and wait until it is empty (v2: cgroup.kill; v1: freeze via
   * freezer, SIGKILL all in cgroup.procs, thaw, repeat until empty). Throws after 5 s.
   */
  killAll(): Promise<void>;
  /** killAll + rmdir every directory; idempotent; never throws for already-removed dirs. */
  close(): Promise<void>;
}

export interface CgroupManager {
  readonly version: 'v1' | 'v2';
  /** Human description for `ebp doctor`: where sandboxes go, which controllers work. */
  describe(): { base: string; controllers: readonly string[] };
  create(name: string, limits: CgroupLimits): Promise<SandboxCgroup>;
  /** Removes empty sandbox cgroups older than `olderThanMs` (left by a killed daemon); returns how many. */
  sweep(olderThanMs: number): number;
}

export type CgroupDetection = { ok: true; manager: CgroupManager } | { ok: false; reason: string; fix: string };

export interface DetectOptions {
  /** Where cgroup filesystems are mounted; default /sys/fs/cgroup. */
  readonly root?: string;
  /** Contents of /proc/self/cgroup (read from there when omitted). */
  readonly procSelfCgroup?: string;
  /** Contents of /proc/self/mountinfo (read from there when omitted). */
  readonly mountInfo?: string;
  /** Try this version first; the other is still used when the preferred one is not usable. */
  readonly prefer?: 'v1' | 'v2';
}

export { detectCgroups, prepareCgroups } from './detect.js';
