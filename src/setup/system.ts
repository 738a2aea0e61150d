// `ebp setup`: the one-time root preparation, so that nothing needs root while running: the
// unprivileged system user that sandboxes run as, its cgroup directories, the state folders.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { EbpError, errnoCode } from '../lib/errors.js';
import { prepareCgroups } from '../sandbox/cgroup/index.js';
import { lookupUser, SANDBOX_HOST_USER } from '../sandbox/privilege.js';
import type { StatePaths } from '../config/paths.js';

export interface SetupReport {
  readonly user: { name: string; uid: number; gid: number; created: boolean };
  readonly cgroupDirs: readonly string[];
  readonly cgroupProblem?: string;
  readonly stateDirs: readonly string[];
  /** What was done about /dev/net/tun, which slirp4netns opens as the sandbox user. */
  readonly tun: string;
  /** What was done about /dev/fuse, which sshfs opens as the sandbox user (the person's files). */
  readonly fuse: string;
}

/**
 * slirp4netns (the --net NAT) opens /dev/net/tun as the unprivileged sandbox user. Debian's udev
 * rules make it 0666 (the kernel checks CAP_NET_ADMIN in the owning namespace, so the mode grants
 * nothing else); some minimal images leave it 0600. We restore the distribution default.
 */
function ensureTunDevice(): string {
  return ensureWorldDevice(TUN, 'sandboxes cannot get --net');
}

/**
 * sshfs (the person's files) opens /dev/fuse as the sandbox user inside the sandbox's own user
 * namespace. Debian ships it 0666: the kernel only lets a user namespace's owner mount FUSE in
 * a mount namespace it owns, so the mode grants nothing beyond that. Some images leave it 0600.
 */
function ensureFuseDevice(): string {
  return ensureWorldDevice(FUSE, 'the person\'s files cannot be mounted into sandboxes');
}

function ensureWorldDevice(path: string, without: string): string {
  try {
    const mode = statSync(path).mode & 0o777;
    if (mode === 0o666) return `${path} already 0666`;
    chmodSync(path, 0o666);
    return `${path} set to 0666 (was 0${mode.toString(8)})`;
  } catch (error) {
    return `${path} not usable (${errnoCode(error) ?? String(error)}): ${without}`;
  }
}

export const FUSE = '/dev/fuse';

export const TUN = '/dev/net/tun';

export async function setupSystem(paths: StatePaths): Promise<SetupReport> {
  if (process.getuid?.() !== 0) {
    throw new EbpError('PRIVILEGE_REQUIRED', 'ebp setup prepares the system and must run as root', { hint: 'sudo ebp setup' });
  }
  let user = lookupUser(SANDBOX_HOST_USER);
  let created = false;
  if (user === undefined) {
    const result = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--comment', 'eBrainPool sandboxes', SANDBOX_HOST_USER], { encoding: 'utf8' });
    if (result.status !== 0) {
      throw new EbpError('SANDBOX_SETUP_FAILED', `cannot create the system user ${SANDBOX_HOST_USER}: ${result.stderr.trim() || String(result.error)}`, {
        hint: 'check that useradd (package passwd) is installed',
      });
    }
    created = true;
    user = lookupUser(SANDBOX_HOST_USER);
    if (user === undefined) throw new EbpError('SANDBOX_SETUP_FAILED', `useradd succeeded but ${SANDBOX_HOST_USER} is not in /etc/passwd`);
  }
  let cgroupDirs: string[] = [];
  let cgroupProblem: string | undefined;
  try {
    cgroupDirs = (await prepareCgroups({ uid: user.uid, gid: user.gid })).created;
  } catch (error) {
    cgroupProblem = error instanceof Error ? error.message : String(error);
  }
  const tun = ensureTunDevice();
  const fuse = ensureFuseDevice();
  const stateDirs = [paths.stateDir, paths.runtimeDir];
  for (const dir of stateDirs) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const report: SetupReport = { user: { name: SANDBOX_HOST_USER, uid: user.uid, gid: user.gid, created }, cgroupDirs, stateDirs, tun, fuse };
  return cgroupProblem === undefined ? report : { ...report, cgroupProblem };
}
