// Facts about the host's root filesystem that decide how /bin, /lib and friends are mirrored.
import { lstatSync, readlinkSync } from 'node:fs';

export type TopDir =
  | { readonly name: string; readonly kind: 'symlink'; readonly target: string }
  | { readonly name: string; readonly kind: 'directory' };

export interface HostLayout {
  /** /bin, /sbin, /lib, /lib32, /lib64, /libx32 as they exist on the host. */
  readonly topDirs: readonly TopDir[];
}

const CANDIDATES = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'] as const;

let cached: HostLayout | undefined;

/** Read once per process: the layout of / does not change under a running daemon. */
export function hostLayout(root = '/'): HostLayout {
  if (root === '/' && cached !== undefined) return cached;
  const topDirs: TopDir[] = [];
  for (const name of CANDIDATES) {
    const path = `${root}${name}`;
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) {
      const target = readlinkSync(path);
      // Merged /usr: follow the host only when the link stays inside /usr.
      if (/^(\/?usr\/)[A-Za-z0-9_/-]+$/.test(target)) topDirs.push({ name, kind: 'symlink', target });
    } else if (stat.isDirectory()) {
      topDirs.push({ name, kind: 'directory' });
    }
  }
  const layout = { topDirs };
  if (root === '/') cached = layout;
  return layout;
}
