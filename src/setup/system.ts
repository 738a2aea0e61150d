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
}

/**
 * slirp4netns (the --net NAT) opens /dev/net/tun as the unprivileged sandbox user. Debian's udev
 * rules make it 0666 (the kernel checks CAP_NET_ADMIN in the owning namespace, so the mode grants
 * nothing else); some minimal images leave it 0600. We restore the distribution default.
 */
function ensureTunDevice(): string {
  try {
    const mode = statSync(TUN).mode & 0o777;
    if (mode === 0o666) return `${TUN} already 0666`;
    chmodSync(TUN, 0o666);
    return `${TUN} set to 0666 (was 0${mode.toString(8)})`;
  } catch (error) {
    return `${TUN} not usable (${errnoCode(error) ?? String(error)}): sandboxes cannot get --net`;
  }
}

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
  const stateDirs = [paths.stateDir, paths.runtimeDir];
  for (const dir of stateDirs) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const report: SetupReport = { user: { name: SANDBOX_HOST_USER, uid: user.uid, gid: user.gid, created }, cgroupDirs, stateDirs, tun };
  return cgroupProblem === undefined ? report : { ...report, cgroupProblem };
}
