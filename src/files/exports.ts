// The person's side of file sharing: which local folders and files a launch exposes, where they
// appear in the sandbox (the spec sent to the host), how the app's arguments are rewritten to
// those places, and the jail that serves exactly them over SFTP.
//
// Threat: the host (and the app in its sandbox) is another machine. OpenSSH's sftp-server would
// answer for every file this user can reach, so it runs in a bubblewrap jail whose whole
// filesystem is: the shared folders at /s/N, the forwarded files at /f/N/NAME (read-only binds
// for `:ro`), and read-only system folders it needs to run. `..`, absolute paths and symlinks
// made by the app resolve inside that jail, where the person's other files do not exist. No
// jail, no sharing: `ebp run` refuses and says how to fix it.
import { spawn, type ChildProcess } from 'node:child_process';
import { realpathSync, statSync } from 'node:fs';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { EbpError } from '../lib/errors.js';
import type { HostLayout } from '../sandbox/host-layout.js';
import { SANDBOX_USER } from '../sandbox/policy.js';
import { nameProblem, overlaps, targetProblem, type FileMount, MAX_MOUNTS } from './spec.js';
import { personReadAhead, readAheadVersion } from './read-ahead.js';

export const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
/** SFTP requests the jail's server refuses: they name users or homes, which the host has no business knowing. */
const DENIED_REQUESTS = 'home-directory,users-groups-by-id,expand-path';

export interface Export {
  readonly kind: 'folder' | 'file';
  /** Real path on this machine (symlinks resolved). */
  readonly path: string;
  /** Where the jail shows it: /s/N or /f/N/NAME. */
  readonly jailPath: string;
  readonly readOnly: boolean;
}

export interface FilesPlan {
  readonly exports: readonly Export[];
  readonly mounts: readonly FileMount[];
  /** The app's arguments, forwarded files rewritten to their places in the sandbox. */
  readonly args: readonly string[];
}

export interface PlanInput {
  /** `--share DIR[:ro|:rw]`. */
  readonly shares: readonly string[];
  /** `--file PATH[:ro|:rw]`. */
  readonly files: readonly string[];
  /** The app's arguments as typed. */
  readonly args: readonly string[];
  /** The app takes files (%f %F %u %U): arguments naming existing local files are forwarded. */
  readonly autoFiles: boolean;
  readonly home: string;
  readonly cwd: string;
}

/** "PATH", "PATH:ro" or "PATH:rw". */
export function parseAccess(text: string): { path: string; readOnly: boolean } {
  if (text.endsWith(':ro')) return { path: text.slice(0, -3), readOnly: true };
  if (text.endsWith(':rw')) return { path: text.slice(0, -3), readOnly: false };
  return { path: text, readOnly: false };
}

function inside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
}

function real(path: string, what: string): string {
  try {
    return realpathSync(path);
  } catch {
    throw new EbpError('USAGE', `${what} ${JSON.stringify(path)} does not exist`, { hint: 'check the path' });
  }
}

function checkedTarget(target: string, path: string): string {
  const problem = targetProblem(target);
  if (problem !== undefined) throw new EbpError('USAGE', `${JSON.stringify(path)} cannot be shared: its name has ${problem}`, { hint: 'rename it, or share the folder it is in' });
  return target;
}

/** Forwardable: an argument that names an existing regular file here (options are not). */
function namesFile(arg: string, cwd: string): boolean {
  if (arg === '' || arg.startsWith('-')) return false;
  try {
    return statSync(resolve(cwd, arg)).isFile();
  } catch {
    return false;
  }
}

export function planFiles(input: PlanInput): FilesPlan {
  const exports: Export[] = [];
  const mounts: FileMount[] = [];
  let home: string;
  try {
    home = realpathSync(input.home);
  } catch {
    home = input.home;
  }
  const free = (target: string): boolean => mounts.every((mount) => !overlaps(mount.target, target));
  const numbered = (prefix: string, name: string): string => {
    for (let n = 1; ; n += 1) {
      const candidate = n === 1 ? `${prefix}/${name}` : `${prefix}/${name}-${n}`;
      if (free(candidate)) return candidate;
    }
  };

  // Folders: inside the home at the same home-relative place, others under ~/Shared/NAME.
  const folders: { path: string; target: string }[] = [];
  for (const text of input.shares) {
    const access = parseAccess(text);
    const path = real(resolve(input.cwd, access.path), 'the folder');
    if (!statSync(path).isDirectory()) throw new EbpError('USAGE', `${JSON.stringify(access.path)} is not a folder`, { hint: 'share folders with --share, single files with --file' });
    const clash = folders.find((folder) => inside(path, folder.path) || inside(folder.path, path));
    if (clash !== undefined) throw new EbpError('USAGE', `${JSON.stringify(access.path)} and ${JSON.stringify(clash.path)} overlap`, { hint: 'share only the outer folder' });
    const own = inside(path, home) && path !== home ? relative(home, path) : undefined;
    const target = checkedTarget(own !== undefined && free(own) ? own : numbered('Shared', basename(path) || 'root'), path);
    const index = folders.length;
    folders.push({ path, target });
    exports.push({ kind: 'folder', path, jailPath: `/s/${index}`, readOnly: access.readOnly });
    mounts.push({ source: `s/${index}`, target, readOnly: access.readOnly });
  }

  // Files: named with --file, or arguments naming local files for an app that takes files.
  const byPath = new Map<string, string>();
  const place = (text: string, readOnly: boolean): string => {
    const path = real(resolve(input.cwd, text), 'the file');
    const known = byPath.get(path);
    if (known !== undefined) return known;
    if (!statSync(path).isFile()) throw new EbpError('USAGE', `${JSON.stringify(text)} is not a regular file`, { hint: 'forward files with --file, folders with --share' });
    let target: string;
    const folder = folders.find((entry) => inside(path, entry.path));
    if (folder !== undefined) {
      target = `${folder.target}/${relative(folder.path, path)}`;
    } else {
      const name = basename(path);
      const problem = nameProblem(name);
      if (problem !== undefined) throw new EbpError('USAGE', `${JSON.stringify(text)} cannot be forwarded: its name has ${problem}`, { hint: 'rename it' });
      const own = inside(path, home) ? relative(home, path) : undefined;
      target = checkedTarget(own !== undefined && free(own) ? own : numbered('Files', name), path);
      const index = exports.filter((entry) => entry.kind === 'file').length;
      exports.push({ kind: 'file', path, jailPath: `/f/${index}/${name}`, readOnly });
      mounts.push({ source: `f/${index}/${name}`, target, readOnly });
    }
    const inSandbox = `${SANDBOX_USER.home}/${target}`;
    byPath.set(path, inSandbox);
    return inSandbox;
  };

  const marked = new Map<string, string>();
  for (const text of input.files) {
    const access = parseAccess(text);
    marked.set(access.path, place(access.path, access.readOnly));
  }
  const args = input.args.map((arg) => {
    const forwarded = marked.get(arg);
    if (forwarded !== undefined) return forwarded;
    return input.autoFiles && namesFile(arg, input.cwd) ? place(arg, false) : arg;
  });
  // A --file that no argument names is added as the last argument.
  for (const [text, inSandbox] of marked) if (!input.args.includes(text)) args.push(inSandbox);
  if (mounts.length > MAX_MOUNTS) throw new EbpError('USAGE', `at most ${MAX_MOUNTS} folders and files can be shared with one launch`);
  return { exports, mounts, args };
}

/** Pure: bwrap's argv for the jail (data descriptors 3 and 4: /etc/passwd and /etc/group). */
export function jailArgs(exports: readonly Export[], layout: HostLayout, command: readonly string[]): string[] {
  const args = ['--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL'];
  args.push('--ro-bind', '/usr', '/usr');
  for (const dir of layout.topDirs) {
    if (dir.kind === 'symlink') args.push('--symlink', dir.target, `/${dir.name}`);
    else args.push('--ro-bind', `/${dir.name}`, `/${dir.name}`);
  }
  // sftp-server looks its user up; it gets one line, not this machine's list of people.
  args.push('--perms', '0644', '--ro-bind-data', '3', '/etc/passwd', '--perms', '0644', '--ro-bind-data', '4', '/etc/group');
  // sftp-server opens /dev/null; a minimal /dev (null, zero, random...) is all it gets.
  args.push('--dev', '/dev', '--dir', '/s', '--dir', '/f');
  for (const entry of exports) args.push(entry.readOnly ? '--ro-bind' : '--bind', entry.path, entry.jailPath);
  // Nothing may be created beside the exports.
  args.push('--remount-ro', '/', '--chdir', '/', '--', ...command);
  return args;
}

export interface Jail {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  close(): void;
}

function identityFiles(): [string, string] {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return [`ebp:x:${uid}:${gid}::/:/usr/sbin/nologin\n`, `ebp:x:${gid}:\n`];
}

function startBwrap(bwrap: string, args: readonly string[], stdio: 'serve' | 'check'): ChildProcess {
  const child = spawn(bwrap, args, {
    stdio: stdio === 'serve' ? ['pipe', 'pipe', 'ignore', 'pipe', 'pipe'] : ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
    env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
  });
  const [passwd, group] = identityFiles();
  for (const [fd, content] of [[3, passwd], [4, group]] as const) {
    const stream = child.stdio[fd] as Writable | null;
    stream?.on('error', () => undefined);
    stream?.end(content);
  }
  return child;
}

const FIX = 'install bubblewrap (sudo apt-get install bubblewrap) and allow unprivileged user namespaces (sudo sysctl kernel.unprivileged_userns_clone=1; on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0)';

/**
 * Checks that the jail can be built here with these exports (runs it with `true`). Refuses,
 * naming the fix, when bubblewrap is missing or may not make namespaces: without a jail,
 * nothing is shared.
 */
export async function checkJail(bwrap: string, exports: readonly Export[], layout: HostLayout): Promise<void> {
  if (!isAbsolute(bwrap)) throw new EbpError('SANDBOX_UNSUPPORTED', 'cannot share files: bubblewrap (bwrap) was not found', { hint: FIX });
  const child = startBwrap(bwrap, jailArgs(exports, layout, ['/bin/true']), 'check');
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const code = await new Promise<number | null>((done) => {
    child.once('error', () => { done(-1); });
    child.once('close', (status) => { done(status); });
  });
  if (code !== 0) {
    throw new EbpError('SANDBOX_UNSUPPORTED', `cannot share files: the jail that limits the peer to them does not work here (${stderr.trim().split('\n')[0] || (code === -1 ? `${bwrap} could not be started` : `status ${String(code)}`)})`, { hint: FIX });
  }
}

/** Serves the exports on `input`/`output` (the SFTP channel) from a jailed sftp-server. */
export function startJail(bwrap: string, exports: readonly Export[], layout: HostLayout, stream: { input: Readable; output: Writable; hello?: Readable }): Jail {
  const child = startBwrap(bwrap, jailArgs(exports, layout, [SFTP_SERVER, '-d', '/', '-P', DENIED_REQUESTS]), 'serve');
  const stdin = child.stdin;
  const stdout = child.stdout;
  stdin?.on('error', () => undefined);
  stream.input.on('error', () => undefined);
  stream.output.on('error', () => undefined);
  // The relays, with read-ahead on open (read-ahead.ts) once the host's side says it takes part.
  const readAhead = stdin === null || stdout === null ? undefined : personReadAhead({ fromHost: stream.input, toServer: stdin, fromServer: stdout, toHost: stream.output });
  if (stream.hello !== undefined) {
    let said = '';
    const listen = (chunk: Buffer): void => {
      said += chunk.toString('latin1');
      const version = readAheadVersion(said);
      if (version !== undefined) {
        readAhead?.enable(version);
        stream.hello?.off('data', listen);
      } else if (said.length > 4096) {
        stream.hello?.off('data', listen);
      }
    };
    stream.hello.on('data', listen);
  }
  const exited = new Promise<number | null>((done) => {
    child.once('error', () => { done(null); });
    child.once('close', (status) => { done(status); });
  });
  return {
    child,
    exited,
    close() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
