// `ebp doctor`'s checks: what this host offers the sandbox engine, and the exact fix for what
// it lacks. Each check runs the real thing where it can (bwrap in a user namespace, say).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { SFTP_SERVER } from '../files/exports.js';
import { detectCgroups } from '../sandbox/cgroup/index.js';
import { findProgram } from '../sandbox/engine.js';
import { SANDBOX_HOST_USER, sandboxIdentity, type HostIdentity } from '../sandbox/privilege.js';
import { seccompSupport } from '../sandbox/seccomp.js';

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  /** Required for sandboxes to run at all; optional ones only degrade a feature. */
  readonly required: boolean;
  readonly detail: string;
  readonly fix?: string;
}

function versionOf(program: string, args: readonly string[] = ['--version']): string | undefined {
  const result = spawnSync(program, args, { encoding: 'utf8', timeout: 5000 });
  if (result.status !== 0) return undefined;
  return (result.stdout.trim() || result.stderr.trim()).split('\n')[0];
}

function checkBwrap(identity: HostIdentity | undefined): CheckResult[] {
  const bwrap = findProgram('bwrap');
  if (bwrap === undefined) {
    return [{ name: 'bubblewrap', ok: false, required: true, detail: 'bwrap is not installed', fix: 'sudo apt-get install bubblewrap' }];
  }
  const version = versionOf(bwrap) ?? 'unknown version';
  const results: CheckResult[] = [{ name: 'bubblewrap', ok: true, required: true, detail: `${bwrap} (${version})` }];
  const match = /(\d+)\.(\d+)/.exec(version);
  if (match !== null && Number(match[1]) === 0 && Number(match[2]) < 8) {
    results.push({ name: 'bubblewrap version', ok: false, required: true, detail: `${version} lacks --size/--disable-userns`, fix: 'install bubblewrap 0.8 or newer' });
  }
  if (identity !== undefined) {
    const probe = spawnSync(bwrap, ['--unshare-user', '--unshare-pid', '--unshare-net', '--disable-userns', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '/bin/true'], {
      encoding: 'utf8',
      timeout: 10_000,
      ...(identity.switchUser ? { uid: identity.uid, gid: identity.gid } : {}),
    });
    results.push(probe.status === 0
      ? { name: 'user namespaces', ok: true, required: true, detail: `unprivileged user namespaces work for uid ${identity.uid}` }
      : {
          name: 'user namespaces', ok: false, required: true,
          detail: `bwrap cannot create a user namespace: ${probe.stderr.trim() || `status ${String(probe.status)}`}`,
          fix: 'allow unprivileged user namespaces: sudo sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000 (and on Ubuntu: kernel.apparmor_restrict_unprivileged_userns=0)',
        });
  }
  return results;
}

function checkSeccomp(): CheckResult {
  const support = seccompSupport();
  const kernel = readFileSync('/proc/self/status', 'utf8').includes('Seccomp:');
  if (!kernel) return { name: 'seccomp', ok: false, required: true, detail: 'the kernel has no seccomp filter support', fix: 'use a kernel built with CONFIG_SECCOMP_FILTER' };
  return support.ok
    ? { name: 'seccomp', ok: true, required: true, detail: `libseccomp ${support.version}, arch ${support.arch}` }
    : { name: 'seccomp', ok: false, required: true, detail: support.reason, fix: support.fix };
}

async function checkCgroups(): Promise<CheckResult> {
  const detection = await detectCgroups();
  if (!detection.ok) {
    return { name: 'cgroups', ok: false, required: false, detail: `${detection.reason}; limits fall back to rlimits (no CPU limit)`, fix: detection.fix };
  }
  const { base, controllers } = detection.manager.describe();
  return { name: 'cgroups', ok: true, required: false, detail: `${detection.manager.version}: sandboxes under ${base} (${controllers.join(', ')})` };
}

/** The Debian package version when dpkg knows the package (programs print versions inconsistently). */
function packageVersion(pkg: string): string | undefined {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8', timeout: 5000 });
  return result.status === 0 && result.stdout.trim() !== '' ? result.stdout.trim() : undefined;
}

function checkProgram(name: string, pkg: string, what: string): CheckResult {
  const path = findProgram(name);
  if (path === undefined) return { name, ok: false, required: false, detail: `not installed: ${what}`, fix: `sudo apt-get install ${pkg}` };
  const version = packageVersion(pkg);
  return { name, ok: true, required: false, detail: `${path} (${version === undefined ? 'version unknown' : `${pkg} ${version}`})` };
}

function checkTun(): CheckResult {
  try {
    const mode = statSync('/dev/net/tun').mode & 0o777;
    return (mode & 0o006) === 0o006
      ? { name: 'tun device', ok: true, required: false, detail: `/dev/net/tun mode 0${mode.toString(8)}` }
      : { name: 'tun device', ok: false, required: false, detail: `/dev/net/tun is 0${mode.toString(8)}: slirp4netns cannot open it as the sandbox user, so --net fails`, fix: 'sudo chmod 0666 /dev/net/tun (Debian\'s default; `sudo ebp setup` does it)' };
  } catch {
    return { name: 'tun device', ok: false, required: false, detail: 'no /dev/net/tun: sandboxes cannot get --net', fix: 'sudo modprobe tun' };
  }
}

function checkFuse(): CheckResult {
  if (!existsSync('/dev/fuse')) return { name: 'fuse', ok: false, required: false, detail: 'no /dev/fuse: the person\'s folders cannot be mounted into sandboxes', fix: 'sudo modprobe fuse' };
  const mode = statSync('/dev/fuse').mode & 0o777;
  return (mode & 0o006) === 0o006
    ? { name: 'fuse', ok: true, required: false, detail: `/dev/fuse mode 0${mode.toString(8)}` }
    : { name: 'fuse', ok: false, required: false, detail: `/dev/fuse is 0${mode.toString(8)}: sshfs cannot open it as the sandbox user, so the person's files cannot be mounted`, fix: 'sudo chmod 0666 /dev/fuse (Debian\'s default; `sudo ebp setup` does it)' };
}

export async function runChecks(): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  results.push(major > 20 || (major === 20 && minor >= 19)
    ? { name: 'node', ok: true, required: true, detail: `Node.js ${process.versions.node}` }
    : { name: 'node', ok: false, required: true, detail: `Node.js ${process.versions.node} is too old`, fix: 'install Node.js 20.19 or newer' });
  let identity: HostIdentity | undefined;
  try {
    identity = sandboxIdentity();
    results.push({ name: 'sandbox user', ok: true, required: true, detail: identity.switchUser ? `running as root; sandboxes run as ${SANDBOX_HOST_USER} (uid ${identity.uid})` : `sandboxes run as uid ${identity.uid}` });
  } catch (error) {
    results.push({ name: 'sandbox user', ok: false, required: true, detail: error instanceof Error ? error.message : String(error), fix: 'sudo ebp setup' });
  }
  results.push(...checkBwrap(identity));
  results.push(checkSeccomp());
  results.push(await checkCgroups());
  results.push(checkProgram('slirp4netns', 'slirp4netns', 'sandboxes cannot get --net'));
  results.push(checkTun());
  results.push(checkFuse());
  results.push(checkProgram('sshfs', 'sshfs', 'the person\'s folders cannot be mounted into sandboxes'));
  results.push(existsSync(SFTP_SERVER)
    ? { name: 'sftp-server', ok: true, required: false, detail: `${SFTP_SERVER} (serves this person's files to the apps they run elsewhere)` }
    : { name: 'sftp-server', ok: false, required: false, detail: `no ${SFTP_SERVER}: \`ebp run --share/--file\` cannot serve files from here`, fix: 'sudo apt-get install openssh-sftp-server' });
  results.push(checkProgram('Xvfb', 'xvfb', 'no virtual displays for tests and the browser path'));
  return results;
}
