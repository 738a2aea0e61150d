// The sandbox's own /etc: generated files (users, host name, resolver) plus a short allow-list of
// host files that programs need to start. Nothing else of the host's /etc is visible: no shadow,
// no ssh keys, no sudoers, no host users.
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
