// The host side of a launch with the person's files: an empty per-session folder (the stage),
// and the command prefix that mounts the person's exported tree there with sshfs in passive
// mode (SFTP spoken on a descriptor, served by the person's jailed sftp-server through the
// session's own SSH connection), inside a private user and mount namespace, before bwrap runs.
//
// Why a private namespace: the FUSE mount then exists only for this sandbox. The host's mount
// table never shows it, other sessions and other users of the host cannot reach it, and it
// disappears with the namespace however the session ends (no stale mounts, even after
// kill -9 of the daemon: sshfs loses its SFTP stream, exits, and the namespace dies with the
// sandbox).
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { EbpError } from '../lib/errors.js';
import { hostReadAhead } from './read-ahead.js';

/** The descriptor the SFTP stream arrives on (a socketpair slot of the launcher spawn). */
export const SFTP_FD = 8;

/** Exit status of the prefix when the mount could not be made (as any sandbox setup failure). */
export const FILES_SETUP_EXIT = 125;

/**
 * Runs as root of the new user namespace (mapped to the sandbox user), in the new private mount
 * namespace. Starts sshfs in the background with the SFTP stream as its stdin and stdout and
 * every control descriptor closed, waits until the stage is a mount point (sshfs gone or 10 s:
 * failure), then execs the rest (bwrap) without the SFTP descriptor. Inputs are positional
 * parameters only: $1 stage, $2 sshfs, $3 mountpoint, $4 options.
 */
export const FILES_SHIM = [
  'stage=$1 sshfs=$2 mp=$3 opts=$4; shift 4',
  `( exec 3<&- 4<&- 5<&- 6<&- 7<&- <&${SFTP_FD} >&${SFTP_FD} ${SFTP_FD}>&- 2>/dev/null; exec "$sshfs" -f -o "$opts" x:/ "$stage" ) &`,
  'pid=$! i=0',
  'alive() { read -r line < "/proc/$pid/stat" || return 1; case ${line##*) } in Z*) return 1;; esac; }',
  'until "$mp" -q "$stage"; do',
  '  if [ "$i" -ge 200 ] || ! alive 2>/dev/null; then',
  '    echo "ebp: the person\'s files could not be mounted in the sandbox (sshfs failed or took too long)" >&2',
  '    kill "$pid" 2>/dev/null; exit 125',
  '  fi',
  '  i=$((i+1)); sleep 0.05',
  'done',
  `exec "$@" ${SFTP_FD}>&-`,
].join('\n');

/**
 * sshfs options. contain_symlinks: an absolute symlink (made by the app, or already there)
 * cannot lead out of the mount. nosuid, nodev: nothing on it gains privileges. idmap=user: the
 * person's files appear owned by the sandbox user. dcache_timeout=2: edits made on the person's
 * side show in the sandbox within 2 s (sshfs's default, 20 s, could even hand the app a stale
 * size), while a job walking thousands of files still reuses what a directory listing returned
 * (1 s made a tar of 5,000 files 40% slower). 128 KiB requests (sftp-server takes up to
 * 256 KiB): a quarter of the round trips of the default for bulk reads and writes.
 */
export const SSHFS_OPTIONS = 'passive,contain_symlinks,nosuid,nodev,idmap=user,dcache_timeout=2,max_read=131072,max_write=131072';

export interface FilesTools {
  readonly unshare: string;
  readonly sshfs: string;
  readonly mountpoint: string;
}

const SEARCH = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'];

function find(name: string): string | undefined {
  return SEARCH.map((dir) => join(dir, name)).find((path) => existsSync(path));
}

/** The programs the stage needs, or SANDBOX_UNSUPPORTED naming the package. */
export function filesTools(): FilesTools {
  const sshfs = find('sshfs');
  const unshare = find('unshare');
  const mountpoint = find('mountpoint');
  if (sshfs === undefined) {
    throw new EbpError('SANDBOX_UNSUPPORTED', 'this host cannot mount the person\'s files: sshfs is not installed', { hint: 'the host\'s owner can install it: sudo apt-get install sshfs' });
  }
  if (unshare === undefined || mountpoint === undefined) {
    throw new EbpError('SANDBOX_UNSUPPORTED', 'this host cannot mount the person\'s files: unshare or mountpoint is missing', { hint: 'the host\'s owner can install util-linux' });
  }
  return { sshfs, unshare, mountpoint };
}

/** The argv in front of bwrap: a private user+mount namespace running FILES_SHIM. */
export function filesPrefix(stage: string, tools: FilesTools): string[] {
  return [
    tools.unshare, '--user', '--map-root-user', '--mount', '--propagation', 'private', '--',
    '/bin/sh', '-c', FILES_SHIM, 'ebp-files', stage, tools.sshfs, tools.mountpoint, SSHFS_OPTIONS,
  ];
}

/**
 * Where the stages of one daemon live. A root daemon's sandboxes run as the sandbox user, who
 * must reach its stage whatever the state folder's parents allow: those daemons use
 * /run/ebp/stages-HASH (HASH names the state folder, so two daemons never share one). An
 * ordinary user's daemon uses `<state>/stages`.
 */
export function stagesRoot(stateDir: string, privileged: boolean): string {
  if (!privileged) return join(stateDir, 'stages');
  // node:crypto on use only: every sandbox loads this module, few of them need the hash.
  const { createHash } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  return join(PRIVILEGED_RUN, `stages-${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`);
}

const PRIVILEGED_RUN = '/run/ebp';

/**
 * A fresh empty stage for a session, owned by the user the sandbox runs as (it mounts there).
 * The parent folders are 0711: others may pass, nobody may list.
 */
export function createStage(stateDir: string, id: string, owner: { uid: number; gid: number } | undefined): string {
  const root = stagesRoot(stateDir, owner !== undefined);
  if (owner !== undefined) {
    mkdirSync(PRIVILEGED_RUN, { recursive: true, mode: 0o711 });
    chmodSync(PRIVILEGED_RUN, 0o711);
  }
  const stage = join(root, id);
  // The root goes when its last stage does (removeStage): if that happens between the two
  // mkdirs, make it again.
  for (let attempt = 0; ; attempt += 1) {
    mkdirSync(root, { recursive: true, mode: 0o711 });
    try {
      mkdirSync(stage, { mode: 0o700 });
      break;
    } catch (error) {
      if (attempt >= 2 || (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  if (owner !== undefined) chownSync(stage, owner.uid, owner.gid);
  return stage;
}

/**
 * Removes a stage. rmdir only, never a recursive delete: the host's view of a stage is always
 * an empty folder (the mount lives in the sandbox's namespace); anything else is left alone.
 */
export function removeStage(stage: string): void {
  for (const dir of [stage, dirname(stage)]) {
    try {
      rmdirSync(dir);
    } catch {
      // already gone, or not empty (then not ours to delete, or another session's root)
      return;
    }
  }
}

/** Stages left by a daemon that was killed: empty folders, removed at start. */
export function removeStaleStages(stateDir: string, privileged: boolean): void {
  const root = stagesRoot(stateDir, privileged);
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) removeStage(join(root, name));
  removeStage(root);
}

/** A file channel with requests in flight and no answer for this long is taken as dead. */
export const SFTP_STALL_MS = 10_000;

/**
 * Joins sshfs's descriptor and the SFTP channel, and watches for a person's side that stops
 * answering (gone without a TCP reset, or hostile). sshfs itself has no request timeout in
 * passive mode: a silent peer would leave every file operation in the sandbox, bwrap's own
 * binds included, blocked for ever. When requests have been sent and nothing came back for
 * `stallMs`, both ends are cut: sshfs exits, the kernel aborts the FUSE connection, and file
 * operations in the sandbox fail with ENOTCONN instead of hanging.
 */
export function joinSftp(local: Duplex, remote: Duplex, options: { stallMs?: number; onCut?: () => void } = {}): void {
  const stallMs = options.stallMs ?? SFTP_STALL_MS;
  let waitingSince: number | undefined;
  local.on('error', () => undefined);
  remote.on('error', () => undefined);
  remote.on('data', () => {
    waitingSince = undefined;
  });
  const timer = setInterval(() => {
    if (waitingSince !== undefined && Date.now() - waitingSince > stallMs) {
      clearInterval(timer);
      options.onCut?.();
      local.destroy();
      remote.destroy();
    }
  }, Math.min(1000, stallMs));
  timer.unref();
  const stop = (): void => { clearInterval(timer); };
  local.once('close', stop);
  remote.once('close', stop);
  // The relays; reads the person's side answered ahead are answered here (read-ahead.ts).
  // Waiting: for an answer to what went to the person (not what was answered here).
  hostReadAhead({ fromSshfs: local, toSshfs: local, fromPerson: remote, toPerson: remote }, {
    sentToPerson: () => {
      waitingSince ??= Date.now();
    },
  });
}
