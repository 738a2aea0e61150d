// The sandbox engine: everything a launch needs that is found once per process (bwrap and
// slirp4netns paths, the seccomp program, cgroup access, the host layout, the host uid).
// A daemon creates it at start; every launch reuses it.
import { accessSync, closeSync, constants, readdirSync, readFileSync } from 'node:fs';
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
}

const O_CLOEXEC = 0o2000000;

/** Descriptors above stderr that would survive exec (read from /proc, no FFI needed). */
function inheritableDescriptors(): number[] {
  const open: number[] = [];
  for (const name of readdirSync('/proc/self/fdinfo')) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    try {
      const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${name}`, 'utf8'))?.[1];
      if (flags !== undefined && (parseInt(flags, 8) & O_CLOEXEC) === 0) open.push(fd);
    } catch {
      // closed meanwhile
    }
  }
  return open;
}

/**
 * Closes the descriptors above stderr that this process inherited without close-on-exec. Threat:
 * whatever started us (a terminal multiplexer, a CI runner, a service manager) would otherwise
 * pass them through bwrap into every sandbox. This process never uses them: its own descriptors
 * are close-on-exec, and the engine is made before it opens any other kind. Closing needs no FFI,
 * which costs a one-shot `ebp sandbox` milliseconds to load. Node's IPC channel, if any, stays.
 */
export function closeInherited(): number[] {
  const ipc = Number(process.env.NODE_CHANNEL_FD ?? -1);
  const closed: number[] = [];
  for (const fd of inheritableDescriptors()) {
    if (fd === ipc) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      // gone meanwhile
    }
  }
  return closed;
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
