// NAT network for a sandbox that asks for one: slirp4netns attached to the sandbox's own network
// namespace while bwrap holds the command on --block-fd. Without --net the sandbox has loopback only.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { Readable, Writable } from 'node:stream';
import { EbpError } from '../lib/errors.js';
import type { HostIdentity } from './privilege.js';

/** The virtual subnet inside sandboxes; a benchmarking range so it never shadows a real LAN. */
export const DEFAULT_NAT_CIDR = '198.18.254.0/24';

export interface NatAddresses {
  readonly gateway: string;
  readonly dns: string;
  readonly guest: string;
}

/** slirp4netns' fixed layout inside its subnet: .2 gateway, .3 DNS, .100 the sandbox. */
export function natAddresses(cidr: string): NatAddresses {
  const match = /^(\d+)\.(\d+)\.(\d+)\.0\/24$/.exec(cidr);
  if (match === null || match.slice(1, 4).some((part) => Number(part) > 255)) {
    throw new EbpError('USAGE', `invalid NAT subnet "${cidr}"`, { hint: 'use an IPv4 /24 ending in .0, e.g. 198.18.254.0/24' });
  }
  const prefix = `${match[1]}.${match[2]}.${match[3]}`;
  return { gateway: `${prefix}.2`, dns: `${prefix}.3`, guest: `${prefix}.100` };
}

export interface NatHandle {
  /** Stops slirp4netns; idempotent. */
  close(): void;
}

const READY_TIMEOUT_MS = 5000;
const MAP_TIMEOUT_MS = 2000;

/**
 * Unprivileged bwrap writes its user namespace's uid/gid maps from inside, a moment after it
 * reports its pid. slirp4netns joining before that finds no uid 0 mapped (setegid(0) fails), so
 * wait until the gid map is written (the last of the two).
 */
async function userNamespaceMapped(pid: number): Promise<void> {
  const deadline = Date.now() + MAP_TIMEOUT_MS;
  for (;;) {
    let map = '';
    try {
      map = readFileSync(`/proc/${pid}/gid_map`, 'utf8');
    } catch (error) {
      throw new EbpError('NETWORK_SETUP_FAILED', `the sandbox process ${pid} went away before its network was attached`, { cause: error });
    }
    if (map.trim() !== '') return;
    if (Date.now() > deadline) throw new EbpError('NETWORK_SETUP_FAILED', 'the sandbox did not finish its user namespace set-up in time');
    await delay(1);
  }
}

/**
 * Attach slirp4netns to the network namespace of `childPid`. bwrap nests a second user namespace
 * (for --disable-userns and the uid mapping), so /proc/PID/ns/user is not the one that owns the
 * network namespace; joining it fails with EPERM (slirp4netns issue #311). NS_GET_USERNS on the
 * netns descriptor names the right owner. Host loopback is disabled: the sandbox cannot reach the
 * host's 127.0.0.1 services through the gateway.
 */
export async function attachNat(childPid: number, options: { slirp: string; cidr: string; identity: HostIdentity }): Promise<NatHandle> {
  await userNamespaceMapped(childPid);
  // The FFI is loaded only for sandboxes with a network.
  const { ioctlNoArg, NS_GET_USERNS } = await import('../lib/libc.js');
  let netFd: number | undefined;
  let userFd: number | undefined;
  try {
    netFd = openSync(`/proc/${childPid}/ns/net`, 'r');
    userFd = ioctlNoArg(netFd, NS_GET_USERNS, 'NS_GET_USERNS');
  } catch (error) {
    if (netFd !== undefined) closeSync(netFd);
    throw new EbpError('NETWORK_SETUP_FAILED', `cannot open the sandbox's network namespace: ${String(error)}`, { cause: error });
  }
  const args = [
    '--configure', '--mtu=65520', '--disable-host-loopback', '--enable-seccomp',
    `--cidr=${options.cidr}`, '--netns-type=path', '--userns-path=/proc/self/fd/3',
    '--ready-fd=5', '--exit-fd=6', '/proc/self/fd/4', 'tap0',
  ];
  const identity = options.identity.switchUser ? { uid: options.identity.uid, gid: options.identity.gid } : {};
  const child = spawn(options.slirp, args, {
    stdio: ['ignore', 'ignore', 'pipe', userFd, netFd, 'pipe', 'pipe'],
    env: {},
    ...identity,
  });
  closeSync(userFd);
  closeSync(netFd);
  const stderr: Buffer[] = [];
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  const stdio = child.stdio as unknown as (Readable & Writable)[];
  const ready: Readable | undefined = stdio[5];
  const exitPipe: Writable | undefined = stdio[6];
  if (ready === undefined || exitPipe === undefined) throw new EbpError('INTERNAL', 'slirp4netns pipes missing');
  exitPipe.on('error', () => undefined);
  let closed = false;
  const handle: NatHandle = {
    close() {
      if (closed) return;
      closed = true;
      exitPipe.destroy();
      child.kill('SIGTERM');
    },
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { fail('slirp4netns did not become ready in time'); }, READY_TIMEOUT_MS);
    const fail = (why: string): void => {
      clearTimeout(timer);
      handle.close();
      const detail = Buffer.concat(stderr).toString().trim();
      reject(new EbpError('NETWORK_SETUP_FAILED', `${why}${detail === '' ? '' : `: ${detail}`}`, {
        hint: 'check `ebp doctor` (slirp4netns installed, user namespaces allowed)',
      }));
    };
    ready.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('error', (error) => { fail(`slirp4netns could not start (${error.message})`); });
    child.once('exit', (code) => { fail(`slirp4netns exited with status ${String(code)}`); });
  });
  child.removeAllListeners('exit');
  return handle;
}
