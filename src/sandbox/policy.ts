// What a sandbox is allowed: the policy object every launch is described by. The CLI, the SSH
// server and the web page all produce one of these; `bwrap-args.ts` turns it into bwrap's argv.

/** Inside the sandbox everyone is this user; the host uid behind it is never visible. */
export const SANDBOX_USER = { name: 'ebp', uid: 1000, gid: 1000, home: '/home/ebp' } as const;

export const SANDBOX_PATH = '/usr/local/bin:/usr/bin:/bin';

export interface Share {
  /** Absolute path on the host side (already resolved, never a symlink). */
  readonly source: string;
  /** Absolute path inside the sandbox. */
  readonly target: string;
  readonly readOnly: boolean;
}

/**
 * The person's files, mounted by sshfs at `stage` (in the sandbox's own mount namespace, see
 * files/stage.ts) and bound from there into the sandbox's home. Sources and targets were
 * validated by files/spec.ts: relative, normalized, no `..`, no overlaps.
 */
export interface RemoteFiles {
  readonly stage: string;
  readonly mounts: readonly { readonly source: string; readonly target: string; readonly readOnly: boolean }[];
}

export type HomePolicy =
  | { readonly kind: 'ephemeral'; readonly sizeBytes: number }
  | { readonly kind: 'persistent'; readonly hostPath: string };

export type NetworkPolicy = 'none' | 'nat';

/**
 * A forwarded X11 display (src/display/): a host folder holding only the listening socket X0,
 * bound as /tmp/.X11-unix, and an Xauthority file with a fake cookie, bound read-only.
 */
export interface X11Mount {
  readonly socketDir: string;
  readonly authFile: string;
  readonly screen: number;
}

/** Where a forwarded display appears inside the sandbox. */
export const SANDBOX_X11 = { socketDir: '/tmp/.X11-unix', authFile: `/run/user/${SANDBOX_USER.uid}/Xauthority`, display: 0 } as const;

export interface ResourceLimits {
  readonly memoryBytes: number;
  readonly pids: number;
  readonly cpus: number;
  readonly ioWeight?: number;
}

export interface SandboxPolicy {
  /** argv of the program to run; argv[0] is looked up in the sandbox's PATH. */
  readonly command: readonly string[];
  readonly network: NetworkPolicy;
  readonly limits: ResourceLimits;
  readonly home: HomePolicy;
  readonly tmpSizeBytes: number;
  readonly shares: readonly Share[];
  /** Environment for the program; already filtered through `cleanEnvironment`. */
  readonly env: Readonly<Record<string, string>>;
  readonly hostname: string;
  /** Wall-clock limit; undefined = none. */
  readonly timeoutMs?: number;
  /** The person's files over reverse SFTP; undefined = none. */
  readonly remoteFiles?: RemoteFiles;
  /** A forwarded X11 display; undefined = none (no X server is reachable at all). */
  readonly x11?: X11Mount;
}

export const DEFAULT_LIMITS: ResourceLimits = {
  memoryBytes: 1024 ** 3,
  pids: 256,
  cpus: 1,
};

export const DEFAULT_HOME_SIZE = 256 * 1024 ** 2;
export const DEFAULT_TMP_SIZE = 256 * 1024 ** 2;
/** Small tmpfs mounts (/run, /run/user/1000, /dev/shm) get this much at most. */
export const SMALL_TMPFS_SIZE = 64 * 1024 ** 2;

const PASSED_ENV = new Set(['LANG', 'TERM']);
const PASSED_ENV_PREFIX = 'LC_';
/** Locale and terminal values are short tokens; anything else is not passed. */
const SAFE_ENV_VALUE = /^[A-Za-z0-9_.@:+-]{1,64}$/;

/**
 * The environment a sandboxed program sees. Threat: a caller (or a remote peer) smuggling
 * LD_PRELOAD, PATH or similar into the sandbox. Only locale variables and TERM pass through,
 * and only with plain token values; HOME, USER, PATH and XDG_RUNTIME_DIR are set by us.
 */
export function cleanEnvironment(input: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined || !SAFE_ENV_VALUE.test(value)) continue;
    if (PASSED_ENV.has(key) || (key.startsWith(PASSED_ENV_PREFIX) && /^LC_[A-Z]+$/.test(key))) {
      env[key] = value;
    }
  }
  env['HOME'] = SANDBOX_USER.home;
  env['USER'] = SANDBOX_USER.name;
  env['LOGNAME'] = SANDBOX_USER.name;
  env['PATH'] = SANDBOX_PATH;
  env['XDG_RUNTIME_DIR'] = `/run/user/${SANDBOX_USER.uid}`;
  env['SHELL'] = '/bin/sh';
  return env;
}

/** DISPLAY and XAUTHORITY for a sandbox with a forwarded display: set by us, never passed in. */
export function x11Environment(mount: X11Mount): Record<string, string> {
  return {
    DISPLAY: mount.screen === 0 ? `:${SANDBOX_X11.display}` : `:${SANDBOX_X11.display}.${mount.screen}`,
    XAUTHORITY: SANDBOX_X11.authFile,
  };
}
