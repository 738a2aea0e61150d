// The sandbox engine: everything a launch needs that is found once per process (bwrap and
// slirp4netns paths, the seccomp program, cgroup access, the host layout, the host uid).
// A daemon creates it at start; every launch reuses it.
import { accessSync, constants } from 'node:fs';
import { closeInherited } from '../lib/descriptors.js';
import { EbpError } from '../lib/errors.js';
import { detectCgroups, type CgroupManager } from './cgroup/index.js';
import { hostLayout, type HostLayout } from './host-layout.js';
import { DEFAULT_NAT_CIDR } from './network.js';
import { sandboxIdentity, type HostIdentity } from './privilege.js';
import { loadSeccompProgram } from './seccomp-cache.js';

export interface SandboxEngine {
  readonly bwrap: string;
  readonly slirp: string | undefined;
  readonly prlimit: string | undefined;
  readonly layout: HostLayout;
  readonly identity: HostIdentity;
  readonly seccomp: Buffer;
  /** Undefined when no cgroup can be used: limits then fall back to rlimits. */
  readonly cgroups: CgroupManager | undefined;
  /** Why cgroups are not used, when they are not. */
  readonly cgroupProblem: string | undefined;
  readonly natCidr: string;
  /**
   * How long after a sandbox's end is known its teardown waits (the cgroup's removal, the held
   * namespaces' release): 0, at once, for a command that waits for that teardown itself; the
   * daemon, whose sandboxes' status goes to someone else, waits for the quiet moment after it
   * (lib/quiet.ts).
   */
  readonly tearDownAfterMs: number;
}

const SEARCH_PATH = ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin'];

export function findProgram(name: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    const path = `${dir}/${name}`;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface EngineOptions {
  readonly natCidr?: string;
  /** Use no cgroups even where they work (tests of the fallback path). */
  readonly noCgroups?: boolean;
  /** Where the compiled seccomp program is cached (the state folder); none = compile each time. */
  readonly cacheDir?: string;
  /** See SandboxEngine.tearDownAfterMs; 0 by default. */
  readonly tearDownAfterMs?: number;
}

export async function createEngine(options: EngineOptions = {}): Promise<SandboxEngine> {
  const bwrap = findProgram('bwrap');
  if (bwrap === undefined) {
    throw new EbpError('SANDBOX_UNSUPPORTED', 'bubblewrap (bwrap) is not installed', {
      hint: 'install it: sudo apt-get install bubblewrap',
    });
  }
  const identity = sandboxIdentity();
  closeInherited();
  const seccomp = await loadSeccompProgram(options.cacheDir);
  let cgroups: CgroupManager | undefined;
  let cgroupProblem: string | undefined;
  if (options.noCgroups === true) {
    cgroupProblem = 'cgroups turned off';
  } else {
    const detection = await detectCgroups();
    if (detection.ok) cgroups = detection.manager;
    else cgroupProblem = `${detection.reason} (${detection.fix})`;
  }
  return {
    bwrap,
    slirp: findProgram('slirp4netns'),
    prlimit: findProgram('prlimit'),
    layout: hostLayout(),
    identity,
    seccomp,
    cgroups,
    cgroupProblem,
    natCidr: options.natCidr ?? DEFAULT_NAT_CIDR,
    tearDownAfterMs: options.tearDownAfterMs ?? 0,
  };
}

let shared: Promise<SandboxEngine> | undefined;

/** The process-wide engine, created on first use. */
export function defaultEngine(options: EngineOptions = {}): Promise<SandboxEngine> {
  shared ??= createEngine(options);
  // A failed detection is not cached: the next call tries again (after `ebp setup`, say).
  void shared.catch(() => {
    shared = undefined;
  });
  return shared;
}
