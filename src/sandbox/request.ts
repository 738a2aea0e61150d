// From what a person asks for (command line, later the SSH request and the web page) to a
// validated SandboxPolicy. Every path and size is checked here, at the boundary.
import { lchownSync, lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, normalize, relative } from 'node:path';
import { EbpError, errnoCode } from '../lib/errors.js';
import {
  cleanEnvironment,
  DEFAULT_HOME_SIZE,
  DEFAULT_LIMITS,
  DEFAULT_TMP_SIZE,
  SANDBOX_USER,
  type HomePolicy,
  type SandboxPolicy,
  type Share,
  type X11Mount,
  x11Environment,
} from './policy.js';
import type { HostIdentity } from './privilege.js';

export interface SandboxRequest {
  readonly command: readonly string[];
  readonly network?: boolean;
  readonly memoryBytes?: number;
  readonly pids?: number;
  readonly cpus?: number;
  /** Persistent home on the host; undefined = ephemeral. */
  readonly homeDir?: string;
  readonly homeSizeBytes?: number;
  /** "SRC[:DST][:ro]" as typed by the person. */
  readonly shares?: readonly string[];
  readonly tmpSizeBytes?: number;
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly hostname?: string;
  /** A forwarded X11 display (made by src/display/); adds DISPLAY and XAUTHORITY. */
  readonly x11?: X11Mount;
}

/** Paths inside the sandbox that a share may never cover: the system the sandbox is built on. */
const RESERVED_TARGETS = ['/', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/proc', '/dev', '/run', '/tmp', '/var', '/sys'];

export interface ShareSpec {
  readonly source: string;
  readonly target: string | undefined;
  readonly readOnly: boolean;
}

export function parseShareSpec(text: string): ShareSpec {
  const parts = text.split(':');
  let readOnly = false;
  const last = parts[parts.length - 1];
  if (parts.length > 1 && (last === 'ro' || last === 'rw')) {
    readOnly = last === 'ro';
    parts.pop();
  }
  if (parts.length > 2 || parts[0] === undefined || parts[0] === '') {
    throw new EbpError('USAGE', `invalid share "${text}"`, { hint: 'use SRC[:DST][:ro], e.g. ~/Documents or ./data:/home/ebp/data:ro' });
  }
  return { source: parts[0], target: parts[1], readOnly };
}

/**
 * Where a host folder appears inside: a folder in the person's home keeps its place relative to
 * the sandbox's home (~/Documents → /home/ebp/Documents); any other under ~/Shared/NAME.
 */
export function defaultShareTarget(source: string, home: string): string {
  const rel = relative(home, source);
  if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)) return `${SANDBOX_USER.home}/${rel}`;
  return `${SANDBOX_USER.home}/Shared/${basename(source) || 'root'}`;
}

export function validateShareTarget(target: string): string {
  if (!isAbsolute(target) || target.includes('\0')) {
    throw new EbpError('USAGE', `share target "${target}" must be an absolute path inside the sandbox`);
  }
  const clean = normalize(target).replace(/\/+$/, '') || '/';
  if (clean.split('/').includes('..')) throw new EbpError('USAGE', `share target "${target}" must not contain ".."`);
  for (const reserved of RESERVED_TARGETS) {
    if (clean === reserved || (reserved !== '/' && clean.startsWith(`${reserved}/`) && reserved !== '/tmp')) {
      throw new EbpError('USAGE', `share target "${target}" would cover the sandbox's ${reserved}`, {
        hint: `put shares under ${SANDBOX_USER.home}, /mnt, /media, /srv or /opt`,
      });
    }
  }
  return clean;
}

/**
 * The folder on the way to a share that the sandbox's host uid cannot pass through, if any (mode
 * bits only; the group is not considered, as the sandbox user belongs to no other group).
 */
export function unreachableFolder(source: string, uid: number): string | undefined {
  const own = statSync(source);
  // The share itself: a folder must be enterable, a file readable.
  const need = own.isDirectory() ? 0o1 : 0o4;
  if ((own.uid === uid ? (own.mode >> 6) & need : own.mode & need) === 0) return source;
  let path = source;
  for (;;) {
    const parent = dirname(path);
    if (parent === path) return undefined;
    const stat = statSync(parent);
    const searchable = stat.uid === uid ? (stat.mode & 0o100) !== 0 : (stat.mode & 0o001) !== 0;
    if (!searchable) return parent;
    path = parent;
  }
}

function resolveShare(spec: ShareSpec, home: string, identity: HostIdentity): Share {
  let source: string;
  try {
    source = realpathSync(spec.source.startsWith('~/') ? `${home}/${spec.source.slice(2)}` : spec.source);
  } catch (error) {
    throw new EbpError('USAGE', `cannot share "${spec.source}": ${errnoCode(error) === 'ENOENT' ? 'no such file or folder' : String(error)}`, { cause: error });
  }
  // As root, sandboxes run as an unprivileged user: say so before a "Permission denied" inside.
  const blocked = identity.switchUser ? unreachableFolder(source, identity.uid) : undefined;
  if (blocked !== undefined) {
    throw new EbpError('USAGE', `cannot share "${spec.source}": sandboxes run as ${identity.name} (uid ${identity.uid}), which cannot enter ${blocked}`, {
      hint: `share a folder it can reach, or let it in: chmod ${blocked === source ? 'o+rx' : 'o+x'} ${blocked}`,
    });
  }
  const target = validateShareTarget(spec.target ?? defaultShareTarget(source, home));
  return { source, target, readOnly: spec.readOnly };
}

/**
 * A persistent home must belong to the host uid that runs the sandbox. We create it when it is
 * missing; an existing one owned by someone else is refused, never chowned (that would hand
 * another account's files to sandboxed code).
 * Threat: a sandbox plants symlinks in a home it can write (`~/rootlink -> /`); a later home
 * path that passes through it would make us create and chown a folder anywhere as root. So no
 * component of the path may be a symlink, its parent must already exist, and the parent must
 * not be writable by the sandbox uid (which could swap it for a symlink between check and use).
 */
export function preparePersistentHome(dir: string, identity: HostIdentity): string {
  const path = normalize(isAbsolute(dir) ? dir : `${process.cwd()}/${dir}`).replace(/\/+$/, '');
  if (path === '') throw new EbpError('USAGE', 'the root folder cannot be a home');
  const parent = dirname(path);
  let realParent: string;
  try {
    realParent = realpathSync(parent);
  } catch (error) {
    throw new EbpError('USAGE', `the folder for home "${dir}" does not exist: ${parent}`, { cause: error, hint: `create it first: mkdir -p ${parent}` });
  }
  if (realParent !== parent) {
    throw new EbpError('USAGE', `home "${dir}" passes through a symlink (${parent} is really ${realParent})`, { hint: 'give the real path, with no symlink in it' });
  }
  const parentStat = lstatSync(parent);
  if (identity.switchUser && parentStat.uid === identity.uid) {
    throw new EbpError('USAGE', `home "${dir}" lies inside a folder that sandboxes can write (${parent})`, { hint: 'keep persistent homes in a folder owned by root or by you' });
  }
  try {
    const stat = lstatSync(path);
    if (stat.isSymbolicLink() || !stat.isDirectory()) {
      throw new EbpError('USAGE', `home "${dir}" is not a plain directory`, { hint: 'give a real directory, not a symlink or file' });
    }
    if (stat.uid !== identity.uid) {
      throw new EbpError('USAGE', `home "${dir}" belongs to uid ${stat.uid}, but sandboxes run as uid ${identity.uid} (${identity.name})`, {
        hint: `use a new directory (ebp creates it), or: sudo chown -R ${identity.uid}:${identity.gid} ${path}`,
      });
    }
    return path;
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
  mkdirSync(path, { mode: 0o700 });
  // lchown: had anything replaced the new folder, we would change the link, not its target.
  if (identity.switchUser) lchownSync(path, identity.uid, identity.gid);
  return path;
}

const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function buildPolicy(request: SandboxRequest, identity: HostIdentity): SandboxPolicy {
  if (request.command.length === 0) throw new EbpError('USAGE', 'no command given', { hint: 'ebp sandbox [OPTIONS] -- COMMAND [ARGS...]' });
  for (const word of request.command) {
    if (word.includes('\0')) throw new EbpError('USAGE', 'a command argument contains a NUL byte');
  }
  const hostname = request.hostname ?? 'sandbox';
  if (!HOSTNAME.test(hostname)) throw new EbpError('USAGE', `invalid sandbox host name "${hostname}"`);
  const personHome = process.env['HOME'] ?? homedir();
  const home: HomePolicy = request.homeDir === undefined
    ? { kind: 'ephemeral', sizeBytes: request.homeSizeBytes ?? DEFAULT_HOME_SIZE }
    : { kind: 'persistent', hostPath: preparePersistentHome(request.homeDir, identity) };
  const shares = (request.shares ?? []).map((text) => resolveShare(parseShareSpec(text), personHome, identity));
  const targets = new Set<string>();
  for (const share of shares) {
    if (targets.has(share.target)) throw new EbpError('USAGE', `two shares use the same place inside: ${share.target}`);
    targets.add(share.target);
  }
  const base: SandboxPolicy = {
    command: [...request.command],
    network: request.network === true ? 'nat' : 'none',
    limits: {
      memoryBytes: request.memoryBytes ?? DEFAULT_LIMITS.memoryBytes,
      pids: request.pids ?? DEFAULT_LIMITS.pids,
      cpus: request.cpus ?? DEFAULT_LIMITS.cpus,
    },
    home,
    tmpSizeBytes: request.tmpSizeBytes ?? DEFAULT_TMP_SIZE,
    shares,
    env: request.x11 === undefined ? cleanEnvironment(request.env ?? {}) : { ...cleanEnvironment(request.env ?? {}), ...x11Environment(request.x11) },
    hostname,
    ...(request.x11 === undefined ? {} : { x11: request.x11 }),
  };
  return request.timeoutMs === undefined ? base : { ...base, timeoutMs: request.timeoutMs };
}
