// Which network interfaces discovery uses ("links"), with their addresses, and whether a packet's
// source address belongs to a link (RFC 6762 §11: only on-link sources are accepted).
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

import { parseIpv4, parseIpv6 } from './wire.js';

export interface LinkAddress {
  readonly address: string;
  /** Prefix length. */
  readonly prefix: number;
}

export interface Link {
  readonly name: string;
  readonly v4: readonly LinkAddress[];
  /** IPv6 addresses (without scope); link-local ones included. */
  readonly v6: readonly LinkAddress[];
}

const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;
const IFF_MULTICAST = 0x1000;

/** Interface flags from sysfs, or undefined when unreadable (then we rely on os data alone). */
function interfaceFlags(name: string): number | undefined {
  if (!/^[\w.:@-]{1,15}$/.test(name)) return undefined;
  try {
    const value = Number.parseInt(readFileSync(`/sys/class/net/${name}/flags`, 'utf8').trim(), 16);
    return Number.isNaN(value) ? undefined : value;
  } catch {
    return undefined;
  }
}

function prefixOf(cidr: string | null, fallback: number): number {
  const text = cidr?.split('/')[1];
  const value = text === undefined ? fallback : Number(text);
  return Number.isInteger(value) ? value : fallback;
}

/**
 * The links to use: the named interfaces (when `only` is given) or every interface that is up,
 * multicast-capable and not loopback; each must have at least one usable address (IPv4, or IPv6
 * when `ipv6`). Sorted by name so the result compares stably.
 */
export function selectLinks(only: readonly string[] | undefined, ipv6: boolean): Link[] {
  const links: Link[] = [];
  for (const [name, infos] of Object.entries(networkInterfaces())) {
    if (only !== undefined && !only.includes(name)) continue;
    const flags = interfaceFlags(name);
    if (flags !== undefined && ((flags & IFF_UP) === 0 || (flags & IFF_MULTICAST) === 0 || (flags & IFF_LOOPBACK) !== 0)) continue;
    const v4: LinkAddress[] = [];
    const v6: LinkAddress[] = [];
    for (const info of infos ?? []) {
      if (info.internal) continue;
      if (info.family === 'IPv4') v4.push({ address: info.address, prefix: prefixOf(info.cidr, 32) });
      else if (ipv6) v6.push({ address: info.address.split('%')[0] ?? info.address, prefix: prefixOf(info.cidr, 128) });
    }
    if (v4.length === 0 && v6.length === 0) continue;
    links.push({ name, v4, v6 });
  }
  return links.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function samePrefix(a: Buffer, b: Buffer, prefix: number): boolean {
  const whole = Math.floor(prefix / 8);
  for (let i = 0; i < whole; i += 1) if (a[i] !== b[i]) return false;
  const rest = prefix % 8;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((a[whole] ?? 0) & mask) === ((b[whole] ?? 0) & mask);
}

export function isLinkLocal6(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address);
}

/**
 * Whether a packet from `source` (as Node reports it: IPv6 link-local with "%ifname") can have
 * arrived on `link`: an IPv4 source in one of the link's subnets; an IPv6 source whose scope is
 * this interface, or in one of its non-link-local prefixes.
 */
export function sourceOnLink(link: Link, source: string, family: 4 | 6): boolean {
  if (family === 4) {
    const bytes = parseIpv4(source);
    if (bytes === undefined) return false;
    return link.v4.some((entry) => {
      const own = parseIpv4(entry.address);
      return own !== undefined && samePrefix(own, bytes, Math.max(0, Math.min(32, entry.prefix)));
    });
  }
  const [bare, scope] = source.split('%');
  if (scope !== undefined) return scope === link.name;
  if (bare === undefined || isLinkLocal6(bare)) return false;
  const bytes = parseIpv6(bare);
  if (bytes === undefined) return false;
  return link.v6.some((entry) => {
    if (isLinkLocal6(entry.address)) return false;
    const own = parseIpv6(entry.address);
    return own !== undefined && samePrefix(own, bytes, Math.max(0, Math.min(128, entry.prefix)));
  });
}
