// The policy → bwrap argv translation. Pure: no I/O, so that every mount and namespace decision
// is unit-tested. The runner supplies the file descriptors listed in the returned plan.
import { SFTP_FD } from '../files/stage.js';
import { generateEtc, hostEtcEntries } from './etc.js';
import type { HostLayout } from './host-layout.js';
import { SANDBOX_USER, SANDBOX_X11, SMALL_TMPFS_SIZE, type SandboxPolicy } from './policy.js';

/** Fixed descriptor numbers in bwrap's fd table (the runner's stdio array). */
export const FD = {
  /** Seccomp BPF program, read by bwrap to EOF. */
  seccomp: 3,
  /** bwrap writes {"child-pid": N} here. */
  status: 4,
  /** bwrap waits for a byte here before starting the command: the cgroup is joined first. */
  block: 5,
  /** The launch shim writes one byte here just before exec: setup succeeded. */
  ready: 6,
  /** The launcher in front of bwrap waits for a line here: its cgroup is joined. */
  launch: 7,
  /** The SFTP stream of the person's files (files/stage.ts), when the launch has some. */
  sftp: SFTP_FD,
  /** A prepared sandbox (sandbox/prepared.ts) reads its command here: PREPARED_SHIM. */
  command: 9,
  /** First of the generated /etc files, then the host /etc files copied (BwrapContext.copiedEtc). */
  firstData: 10,
} as const;

/**
 * Runs on the host in front of bwrap: waits until the daemon has put it into the sandbox's
 * cgroup, closes that descriptor, then execs bwrap. bwrap thus creates the cgroup namespace
 * inside the sandbox's own cgroup, so the sandbox sees "/" there and nothing of the host's
 * cgroup layout, and every process of the sandbox (bwrap's monitor included) is accounted.
 */
export const LAUNCHER_SHIM = `read _ <&${FD.launch}; exec "$@" ${FD.launch}<&-`;

/**
 * The launcher where it joins the sandbox's cgroup itself (SandboxCgroup.selfJoinFiles, v1): it
 * writes 0 ("this thread") to each file named before `--`, then execs what follows. A file it
 * cannot write is named on FD.launch, and it exits 125 without starting anything.
 */
export const SELF_JOINING_LAUNCHER_SHIM = [
  'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do',
  `  { printf 0 > "$1"; } 2>/dev/null || { printf '%s' "$1" >&${FD.launch}; exit 125; }`,
  '  shift',
  'done',
  `shift; exec "$@" ${FD.launch}>&-`,
].join('\n');

/**
 * A tiny POSIX-sh shim between bwrap and the command. It reports that setup succeeded (so a
 * setup failure is told apart from the command's own exit status 1), closes that descriptor, then
 * execs the command: 126/127 come from the shell exactly as POSIX shells define them. The
 * command and its arguments are positional parameters, never parsed as shell text.
 */
export const LAUNCH_SHIM = `printf x >&${FD.ready}; exec "$@" ${FD.ready}>&-`;

/**
 * The shim of a prepared sandbox: set up ahead of its launch, it reports ready at once, then
 * waits for the command on FD.command, one line per word (preparedInput): `A` + an argument,
 * `E` + NAME=VALUE for the environment, `C` + the next line of the word before (a word may hold
 * newlines), and `X` to run. `read -r` takes each line as data (nothing is parsed as shell
 * text); the daemon checked the names and that no word holds a NUL. Without the `X` (the daemon
 * discarded it, or died) it exits without running anything. Then as LAUNCH_SHIM: both
 * descriptors are closed, and 126/127 come from the shell. POSIX sh: on Debian dash, whose start
 * costs half of bash's, in every sandbox made ahead.
 */
export const PREPARED_SHIM = [
  `printf x >&${FD.ready}`,
  "ebp_nl='",
  "'",
  'ebp_go= ebp_kind= ebp_word=',
  `while IFS= read -r ebp_line <&${FD.command}; do`,
  '  case $ebp_line in',
  '    C*) ebp_word=$ebp_word$ebp_nl${ebp_line#C}; continue ;;',
  '  esac',
  '  case $ebp_kind in',
  '    A) set -- "$@" "$ebp_word" ;;',
  '    E) export "$ebp_word" ;;',
  '  esac',
  '  ebp_kind=',
  '  case $ebp_line in',
  '    A*) ebp_kind=A; ebp_word=${ebp_line#A} ;;',
  '    E*) ebp_kind=E; ebp_word=${ebp_line#E} ;;',
  '    X) ebp_go=1; break ;;',
  '    *) break ;;',
  '  esac',
  'done',
  '[ "$ebp_go" = 1 ] && [ "$#" -gt 0 ] || exit 0',
  `exec "$@" ${FD.ready}>&- ${FD.command}<&-`,
].join('\n');

/** POSIX sh runs PREPARED_SHIM. */
export const PREPARED_SHELL = '/bin/sh';

/** Environment names PREPARED_SHIM keeps for itself: a launch with one is not given to a spare. */
export const PREPARED_SHIM_NAMES = /^(ebp_|IFS$)/;

/**
 * PREPARED_SHIM's input: COMMAND (its first word a path, never an option) and ENV to add, each a
 * line or more, then `X`. No word may hold a NUL, and no name be one of PREPARED_SHIM_NAMES.
 */
export function preparedInput(command: readonly string[], env: Readonly<Record<string, string>>): string {
  const lines: string[] = [];
  const word = (kind: 'A' | 'E', text: string): void => {
    const [first = '', ...rest] = text.split('\n');
    lines.push(`${kind}${first}`, ...rest.map((line) => `C${line}`));
  };
  for (const arg of command) word('A', arg);
  for (const [name, value] of Object.entries(env)) word('E', `${name}=${value}`);
  lines.push('X');
  return `${lines.join('\n')}\n`;
}

export interface BwrapPlan {
  readonly args: string[];
  /** Contents for descriptors FD.firstData, FD.firstData + 1, ... in order. */
  readonly dataFiles: readonly string[];
}

export interface BwrapContext {
  readonly layout: HostLayout;
  /**
   * A prepared sandbox: bwrap runs PREPARED_SHIM instead of the policy's command (which is then
   * ignored), `prefix` (e.g. setsid) in front of it.
   */
  readonly prepared?: { readonly prefix: readonly string[] };
  /** Resolver address for /etc/resolv.conf when the policy has network access. */
  readonly dnsAddress?: string;
  /**
   * Host /etc entries given as open descriptors (etc.ts openHostEtcFiles), in this order after
   * the generated files' descriptors: bwrap copies them. The other entries are bound.
   */
  readonly copiedEtc?: readonly string[];
}

export function buildBwrapArgs(policy: SandboxPolicy, context: BwrapContext): BwrapPlan {
  if (policy.command.length === 0 && context.prepared === undefined) throw new TypeError('sandbox policy has an empty command');
  const args: string[] = [];
  const dataFiles: string[] = [];
  const add = (...items: (string | number)[]): void => {
    for (const item of items) args.push(String(item));
  };
  const tmpfs = (dest: string, perms: string, size: number): void => {
    add('--perms', perms, '--size', size, '--tmpfs', dest);
  };

  // Namespaces: all of them. The network namespace is new even with --net: slirp4netns attaches
  // to it from outside. --disable-userns stops nested user namespaces (kernel attack surface).
  add('--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup', '--unshare-net');
  add('--disable-userns', '--uid', SANDBOX_USER.uid, '--gid', SANDBOX_USER.gid, '--hostname', policy.hostname);
  // setsid: the command cannot reach the caller's terminal with TIOCSTI (CVE-2017-5226).
  add('--new-session', '--die-with-parent');

  // Host system, read-only.
  add('--ro-bind', '/usr', '/usr');
  for (const dir of context.layout.topDirs) {
    if (dir.kind === 'symlink') add('--symlink', dir.target, `/${dir.name}`);
    else add('--ro-bind', `/${dir.name}`, `/${dir.name}`);
  }

  // Own /etc: generated files, then the allow-listed host files; read-only at the end.
  tmpfs('/etc', '0755', SMALL_TMPFS_SIZE);
  const etcOptions = { hostname: policy.hostname, network: policy.network };
  const etc = generateEtc(context.dnsAddress === undefined ? etcOptions : { ...etcOptions, dnsAddress: context.dnsAddress });
  // Files, not bind mounts: each bind costs bwrap a read of the whole mount table (etc.ts).
  for (const file of etc) {
    add('--perms', '0644', '--file', FD.firstData + dataFiles.length, file.path);
    dataFiles.push(file.content);
  }
  const copied = context.copiedEtc ?? [];
  for (const name of hostEtcEntries(policy.network)) {
    const index = copied.indexOf(name);
    if (index >= 0) add('--perms', '0644', '--file', FD.firstData + dataFiles.length + index, `/etc/${name}`);
    else add('--ro-bind-try', `/etc/${name}`, `/etc/${name}`);
  }

  // Kernel interfaces: a new /proc for the new pid namespace, a minimal /dev with its own devpts.
  add('--proc', '/proc', '--dev', '/dev');
  tmpfs('/dev/shm', '1777', SMALL_TMPFS_SIZE);

  // Writable places, each size-limited.
  tmpfs('/tmp', '1777', policy.tmpSizeBytes);
  add('--dir', '/var', '--symlink', '../tmp', '/var/tmp');
  tmpfs('/run', '0755', SMALL_TMPFS_SIZE);
  tmpfs(`/run/user/${SANDBOX_USER.uid}`, '0700', SMALL_TMPFS_SIZE);
  if (policy.home.kind === 'ephemeral') tmpfs(SANDBOX_USER.home, '0700', policy.home.sizeBytes);
  else add('--bind', policy.home.hostPath, SANDBOX_USER.home);

  for (const share of policy.shares) {
    add(share.readOnly ? '--ro-bind' : '--bind', share.source, share.target);
  }

  // The person's files: subpaths of the sshfs stage, which exists only in this sandbox's mount
  // namespace. Targets are home-relative and validated (no `..`, no overlaps), so every bind
  // lands inside the home and none hides another.
  if (policy.remoteFiles !== undefined) {
    const { stage, mounts } = policy.remoteFiles;
    for (const mount of mounts) {
      add(mount.readOnly ? '--ro-bind' : '--bind', `${stage}/${mount.source}`, `${SANDBOX_USER.home}/${mount.target}`);
    }
  }

  // A forwarded display: only its own socket folder and fake cookie, read-only (the socket is
  // still connectable: a read-only mount forbids writing files, not connecting to sockets).
  if (policy.x11 !== undefined) {
    add('--ro-bind', policy.x11.socketDir, SANDBOX_X11.socketDir);
    add('--ro-bind', policy.x11.authFile, SANDBOX_X11.authFile);
  }

  // Nothing may create files next to the mounts: /, /etc and /run become read-only.
  add('--remount-ro', '/etc', '--remount-ro', '/run', '--remount-ro', '/');

  add('--chdir', SANDBOX_USER.home);
  add('--seccomp', FD.seccomp, '--json-status-fd', FD.status, '--block-fd', FD.block);
  // `--` ends bwrap's options: nothing after it (command or arguments) can become one.
  if (context.prepared === undefined) add('--', '/bin/sh', '-c', LAUNCH_SHIM, 'sh', ...policy.command);
  else add('--', ...context.prepared.prefix, PREPARED_SHELL, '-c', PREPARED_SHIM, 'ebp-prepared');
  return { args, dataFiles };
}
