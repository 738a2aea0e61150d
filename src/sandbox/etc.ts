// The sandbox's own /etc: generated files (users, host name, resolver) plus a short allow-list of
// host files that programs need to start. Nothing else of the host's /etc is visible: no shadow,
// no ssh keys, no sudoers, no host users.
import { closeSync, constants, fstatSync, openSync, realpathSync, statSync, type Stats } from 'node:fs';
import { randomHex } from '../lib/random.js';
import { SANDBOX_USER, type NetworkPolicy } from './policy.js';

export interface EtcFile {
  readonly path: string;
  readonly content: string;
}

/**
 * Host /etc entries bound read-only into every sandbox. Each is here because ordinary programs
 * read it at start-up: the dynamic linker, locale and time zone, fonts, MIME and desktop
 * databases, toolkit defaults, shell start-up files. None of them holds secrets.
 */
export const HOST_ETC_ALWAYS: readonly string[] = [
  'alternatives',
  'bash.bashrc',
  'debian_version',
  'fonts',
  'gtk-2.0',
  'gtk-3.0',
  'inputrc',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'locale.alias',
  'localtime',
  'magic',
  'magic.mime',
  'mime.types',
  'os-release',
  'profile',
  'protocols',
  'services',
  'terminfo',
  'timezone',
  'xdg',
];

/** Only with network access: what TLS clients and name lookups need. */
export const HOST_ETC_NETWORK: readonly string[] = ['ca-certificates', 'ca-certificates.conf', 'gai.conf', 'ssl'];

/** The host /etc entries a sandbox with this network policy gets. */
export function hostEtcEntries(network: NetworkPolicy): readonly string[] {
  return network === 'nat' ? [...HOST_ETC_ALWAYS, ...HOST_ETC_NETWORK] : HOST_ETC_ALWAYS;
}

/** Host /etc files opened for the sandbox to copy (openHostEtcFiles). */
export interface CopiedEtcFiles {
  /** The entries opened, in the order of `fds`. */
  readonly names: readonly string[];
  readonly fds: readonly number[];
  /** Closes this process's descriptors (after the spawn: the child has its own). */
  close(): void;
}

/** Above this, a bind mount is cheaper than the copy. */
export const MAX_COPIED_ETC_BYTES = 256 * 1024;

/** A regular file everyone may read, small enough to copy. */
function copyable(stats: Stats): boolean {
  return stats.isFile() && (stats.mode & 0o004) !== 0 && stats.size <= MAX_COPIED_ETC_BYTES;
}

/** A file whose path was checked, known by its device and inode: a replaced file is checked again. */
const checkedPaths = new Map<string, { readonly dev: number; readonly ino: number }>();

/**
 * Host /etc files handed to bwrap as open descriptors, which it copies into the sandbox's /etc
 * (`--file`), instead of bind mounts. A bind mount costs bwrap a read of the whole mount table
 * (it looks for the new mount in it), and every mount makes the next read longer: with the
 * allow-list's fifteen files bound, a sandbox took a third longer to set up. Copies of files
 * this small cost less than that.
 *
 * The daemon opens them, not the sandbox's user, so only what that user could read anyway is
 * copied: regular files readable by everyone, whose real path is in /etc or /usr (a symbolic link
 * elsewhere, into a closed folder, say, is left to the bind mount, which opens it as that user).
 * Larger files, folders and the rest are bound as before.
 */
export function openHostEtcFiles(entries: readonly string[], etcDir = '/etc', allowedRoots: readonly string[] = ['/etc/', '/usr/']): CopiedEtcFiles {
  const names: string[] = [];
  const fds: number[] = [];
  for (const name of entries) {
    const path = `${etcDir}/${name}`;
    // Looked at before it is opened: a device or FIFO put there is never opened at all.
    let seen: Stats;
    try {
      seen = statSync(path);
    } catch {
      continue;
    }
    if (!copyable(seen)) continue;
    const known = checkedPaths.get(path);
    if (known?.dev !== seen.dev || known.ino !== seen.ino) {
      try {
        const real = realpathSync(path);
        const target = statSync(real);
        if (!allowedRoots.some((root) => real.startsWith(root)) || target.dev !== seen.dev || target.ino !== seen.ino) continue;
      } catch {
        continue;
      }
      checkedPaths.set(path, { dev: seen.dev, ino: seen.ino });
    }
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    } catch {
      continue;
    }
    let opened: Stats | undefined;
    try {
      opened = fstatSync(fd);
    } catch {
      opened = undefined;
    }
    // The file looked at, not one swapped in since.
    if (opened !== undefined && copyable(opened) && opened.dev === seen.dev && opened.ino === seen.ino) {
      names.push(name);
      fds.push(fd);
    } else {
      closeSync(fd);
    }
  }
  return {
    names,
    fds,
    close() {
      for (const fd of fds.splice(0)) {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
      }
    },
  };
}

export interface EtcOptions {
  readonly hostname: string;
  readonly network: NetworkPolicy;
  /** Resolver address inside the sandbox (slirp4netns' DNS forwarder) when network is 'nat'. */
  readonly dnsAddress?: string;
}

export function generateEtc(options: EtcOptions): EtcFile[] {
  const { name, uid, gid, home } = SANDBOX_USER;
  const files: EtcFile[] = [
    {
      path: '/etc/passwd',
      content: `root:x:0:0:root:/root:/usr/sbin/nologin\n${name}:x:${uid}:${gid}:eBrainPool sandbox:${home}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    },
    { path: '/etc/group', content: `root:x:0:\n${name}:x:${gid}:\nnogroup:x:65534:\n` },
    { path: '/etc/hostname', content: `${options.hostname}\n` },
    {
      path: '/etc/hosts',
      content: `127.0.0.1\tlocalhost\n127.0.1.1\t${options.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    },
    { path: '/etc/nsswitch.conf', content: 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' },
    // A fresh id per sandbox: programs that key state on it cannot link two launches.
    { path: '/etc/machine-id', content: `${randomHex(16)}\n` },
  ];
  if (options.network === 'nat' && options.dnsAddress !== undefined) {
    files.push({ path: '/etc/resolv.conf', content: `nameserver ${options.dnsAddress}\n` });
  }
  return files;
}
