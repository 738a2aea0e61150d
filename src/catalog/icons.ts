// Icon lookup (freedesktop Icon Theme Specification), enough to show each shared app with its icon.
//
// Supported:
// - Absolute paths (`Icon=/usr/share/pixmaps/x.png`): used as is when the file exists and ends in
//   .png, .svg or .xpm. Other names must be plain names: one containing '/', '..' or NUL is refused.
//   A name ending in .png/.svg/.xpm (common, though not allowed) is looked up without it.
// - Base dirs are `<dataDir>/icons` for each data dir, in order ($HOME/.icons is not consulted).
// - The theme (default hicolor), its Inherits chain from index.theme (cycles and depth bounded),
//   then hicolor. In each theme, the spec's LookupIcon: the directories of index.theme (Size,
//   Type Fixed/Scalable/Threshold, MinSize, MaxSize, Threshold, Scale) in their order, first an
//   exact size match at scale 1, then the closest size. Extensions in the order png, svg, xpm.
// - A theme without index.theme (a bare tree): its `NxN/apps`, `NxN@S/apps` and `scalable/apps`
//   directories, fixed sizes first, so: the exact size, then scalable, then the closest size.
// - Last, the spec's fallback: `<dataDir>/icons/<name>.<ext>` and `<dataDir>/pixmaps/<name>.<ext>`.
// Not supported: icon scales above 1 as a request, .icon files, $HOME/.icons, the theme cache.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

export interface IconOptions {
  readonly dataDirs: readonly string[];
  /** Wanted size in pixels; default 48. */
  readonly size?: number;
  /** Icon theme name; default hicolor. */
  readonly theme?: string;
}

export const ICON_EXTENSIONS = ['.png', '.svg', '.xpm'] as const;

const DEFAULT_SIZE = 48;
const MAX_INDEX_BYTES = 1024 * 1024;
const MAX_INHERIT_DEPTH = 8;
const MAX_NAME_LENGTH = 255;
/** Scalable directories found without index.theme: any size is an exact match. */
const BARE_SCALABLE = { min: 1, max: 1 << 16 };

type DirType = 'Fixed' | 'Scalable' | 'Threshold';

interface ThemeDir {
  /** Relative to the theme's base dir, e.g. `48x48/apps`. */
  readonly path: string;
  readonly type: DirType;
  readonly size: number;
  readonly minSize: number;
  readonly maxSize: number;
  readonly threshold: number;
  readonly scale: number;
}

interface Theme {
  /** `<dataDir>/icons/<theme>` that exist, in data-dir order. */
  readonly bases: readonly string[];
  readonly dirs: readonly ThemeDir[];
  readonly inherits: readonly string[];
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function safeName(name: string): boolean {
  return name !== '' && name.length <= MAX_NAME_LENGTH && !name.includes('/') && !name.includes('..') && !name.includes('\0');
}

function safeRelative(path: string): boolean {
  return path !== '' && !isAbsolute(path) && !path.includes('\0') && path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/** A lenient reader for index.theme: groups of key=value; anything odd is skipped. */
function readIni(path: string): Map<string, Map<string, string>> | undefined {
  let text: string;
  try {
    if (statSync(path).size > MAX_INDEX_BYTES) return undefined;
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const groups = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[([^[\]]+)\]$/.exec(line);
    if (header?.[1] !== undefined) {
      current = groups.get(header[1]) ?? new Map<string, string>();
      groups.set(header[1], current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq === -1) continue;
    const key = line.slice(0, eq).trim();
    if (!current.has(key)) current.set(key, line.slice(eq + 1).trim());
  }
  return groups;
}

function positiveInt(text: string | undefined, fallback: number): number {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return fallback;
  const value = Number(text);
  return value > 0 ? value : fallback;
}

function commaList(text: string | undefined): string[] {
  return (text ?? '').split(',').map((item) => item.trim()).filter((item) => item !== '');
}

function dirsFromIndex(index: Map<string, Map<string, string>>): ThemeDir[] | undefined {
  const main = index.get('Icon Theme');
  if (main === undefined) return undefined;
  const names = [...commaList(main.get('Directories')), ...commaList(main.get('ScaledDirectories'))];
  const dirs: ThemeDir[] = [];
  const seen = new Set<string>();
  for (const path of names) {
    if (seen.has(path) || !safeRelative(path)) continue;
    seen.add(path);
    const group = index.get(path);
    const size = positiveInt(group?.get('Size'), 0);
    if (group === undefined || size === 0) continue;
    const typeText = group.get('Type');
    const type: DirType = typeText === 'Fixed' || typeText === 'Scalable' ? typeText : 'Threshold';
    dirs.push({
      path,
      type,
      size,
      minSize: positiveInt(group.get('MinSize'), size),
      maxSize: positiveInt(group.get('MaxSize'), size),
      threshold: positiveInt(group.get('Threshold'), 2),
      scale: positiveInt(group.get('Scale'), 1),
    });
  }
  return dirs;
}

/** Without index.theme: `NxN[@S]/apps` (fixed) in size order, then `scalable/apps`. */
function dirsFromTree(bases: readonly string[]): ThemeDir[] {
  const fixed = new Map<string, ThemeDir>();
  let scalable = false;
  for (const base of bases) {
    let entries: string[];
    try {
      entries = readdirSync(base);
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (entry === 'scalable') {
        scalable = true;
        continue;
      }
      const match = /^(\d{1,4})x(\d{1,4})(?:@(\d{1,2})x?)?$/.exec(entry);
      if (match === null || match[1] !== match[2]) continue;
      const size = Number(match[1]);
      const scale = match[3] === undefined ? 1 : Number(match[3]);
      if (size === 0 || scale === 0) continue;
      const path = `${entry}/apps`;
      fixed.set(path, { path, type: 'Fixed', size, minSize: size, maxSize: size, threshold: 0, scale });
    }
  }
  const dirs = [...fixed.values()].sort((a, b) => a.scale - b.scale || a.size - b.size);
  if (scalable) {
    dirs.push({ path: 'scalable/apps', type: 'Scalable', size: 48, minSize: BARE_SCALABLE.min, maxSize: BARE_SCALABLE.max, threshold: 0, scale: 1 });
  }
  return dirs;
}

function matchesSize(dir: ThemeDir, size: number, scale: number): boolean {
  if (dir.scale !== scale) return false;
  switch (dir.type) {
    case 'Fixed':
      return dir.size === size;
    case 'Scalable':
      return dir.minSize <= size && size <= dir.maxSize;
    case 'Threshold':
      return dir.size - dir.threshold <= size && size <= dir.size + dir.threshold;
  }
}

function sizeDistance(dir: ThemeDir, size: number, scale: number): number {
  const wanted = size * scale;
  switch (dir.type) {
    case 'Fixed':
      return Math.abs(dir.size * dir.scale - wanted);
    case 'Scalable':
      if (wanted < dir.minSize * dir.scale) return dir.minSize * dir.scale - wanted;
      if (wanted > dir.maxSize * dir.scale) return wanted - dir.maxSize * dir.scale;
      return 0;
    case 'Threshold':
      if (wanted < (dir.size - dir.threshold) * dir.scale) return dir.minSize * dir.scale - wanted;
      if (wanted > (dir.size + dir.threshold) * dir.scale) return wanted - dir.maxSize * dir.scale;
      return 0;
  }
}

/**
 * A resolver that caches theme indexes and directory listings, for resolving many icons at once
 * (one catalog load). Create a new one to see changes on disk.
 */
export function createIconResolver(options: IconOptions): (name: string) => string | undefined {
  const size = options.size !== undefined && Number.isInteger(options.size) && options.size > 0 ? options.size : DEFAULT_SIZE;
  const requested = options.theme !== undefined && safeName(options.theme) ? options.theme : 'hicolor';
  const dataDirs = options.dataDirs.filter((dir) => isAbsolute(dir));
  const themes = new Map<string, Theme | undefined>();
  const listings = new Map<string, ReadonlySet<string>>();

  const listing = (dir: string): ReadonlySet<string> => {
    let names = listings.get(dir);
    if (names === undefined) {
      try {
        names = new Set(readdirSync(dir));
      } catch {
        names = new Set();
      }
      listings.set(dir, names);
    }
    return names;
  };
  const existing = (dir: string, file: string): string | undefined => {
    if (!listing(dir).has(file)) return undefined;
    const path = join(dir, file);
    return isFile(path) ? path : undefined;
  };

  const theme = (name: string): Theme | undefined => {
    if (themes.has(name)) return themes.get(name);
    const bases = dataDirs.map((dir) => join(dir, 'icons', name)).filter(isDirectory);
    let loaded: Theme | undefined;
    if (bases.length > 0) {
      const indexPath = bases.map((base) => join(base, 'index.theme')).find(isFile);
      const index = indexPath === undefined ? undefined : readIni(indexPath);
      const fromIndex = index === undefined ? undefined : dirsFromIndex(index);
      loaded = {
        bases,
        dirs: fromIndex ?? dirsFromTree(bases),
        inherits: commaList(index?.get('Icon Theme')?.get('Inherits')).filter(safeName),
      };
    }
    themes.set(name, loaded);
    return loaded;
  };

  // The requested theme, its parents depth-first, then hicolor: the spec's FindIconHelper order.
  const chain: string[] = [];
  const visit = (name: string, depth: number): void => {
    if (chain.includes(name) || depth > MAX_INHERIT_DEPTH) return;
    chain.push(name);
    for (const parent of theme(name)?.inherits ?? []) visit(parent, depth + 1);
  };
  visit(requested, 0);
  if (!chain.includes('hicolor')) chain.push('hicolor');

  const lookup = (icon: string, current: Theme): string | undefined => {
    for (const dir of current.dirs) {
      if (!matchesSize(dir, size, 1)) continue;
      for (const base of current.bases) {
        for (const ext of ICON_EXTENSIONS) {
          const found = existing(join(base, dir.path), icon + ext);
          if (found !== undefined) return found;
        }
      }
    }
    let best: string | undefined;
    let bestDistance = Infinity;
    for (const dir of current.dirs) {
      const distance = sizeDistance(dir, size, 1);
      if (distance >= bestDistance) continue;
      for (const base of current.bases) {
        const found = ICON_EXTENSIONS.map((ext) => existing(join(base, dir.path), icon + ext)).find((path) => path !== undefined);
        if (found !== undefined) {
          best = found;
          bestDistance = distance;
          break;
        }
      }
    }
    return best;
  };

  return (name: string): string | undefined => {
    if (isAbsolute(name)) {
      if (name.includes('\0') || name.split('/').includes('..')) return undefined;
      if (!ICON_EXTENSIONS.some((ext) => name.toLowerCase().endsWith(ext))) return undefined;
      return isFile(name) ? name : undefined;
    }
    if (!safeName(name)) return undefined;
    const extension = ICON_EXTENSIONS.find((ext) => name.endsWith(ext));
    const icon = extension === undefined ? name : name.slice(0, -extension.length);
    if (icon === '') return undefined;
    for (const themeName of chain) {
      const current = theme(themeName);
      if (current === undefined) continue;
      const found = lookup(icon, current);
      if (found !== undefined) return found;
    }
    for (const dir of dataDirs) {
      for (const fallback of [join(dir, 'icons'), join(dir, 'pixmaps')]) {
        for (const ext of ICON_EXTENSIONS) {
          const found = existing(fallback, icon + ext);
          if (found !== undefined) return found;
        }
      }
    }
    return undefined;
  };
}

/** Path of the best icon file for `name`, or undefined. See the module comment for the rules. */
export function resolveIcon(name: string, options: IconOptions): string | undefined {
  return createIconResolver(options)(name);
}
