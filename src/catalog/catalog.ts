// What this machine shares: the installed applications (desktop entries in the XDG data dirs)
// that the owner's policy allows, each with the settings its sandboxes get.
//
// An app is offered only if a sandbox can run it. Sandboxes see the host's /usr (and /bin, /sbin,
// /lib as they are on the host, merged into /usr on current distributions) but not /home, /opt or
// /srv. So the program of Exec must be found at a path under /usr/, /bin/ or /sbin/ (or on
// pathDirs, which default to such dirs) and its real path, after every symlink, must be under
// /usr/. Programs in /opt, ~/bin or a non-merged /bin are not offered (they are listed in
// `skipped` with the reason). Symlinks through /etc/alternatives work: the sandbox binds it.
//
// Desktop entries: the first data dir that has a desktop file ID wins, even when that entry is
// hidden or broken (Hidden=true in ~/.local/share/applications is how a user hides a system app).
// Not offered: Hidden, NoDisplay, Type other than Application, no Exec, TryExec missing, program
// missing or outside /usr. OnlyShowIn/NotShowIn are ignored: peers are no desktop environment.
// Apps from the configuration (`extra`) come first: they win over a desktop entry with the same ID
// and are shared because they are configured (the share allow-list does not apply; deny does).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, open, readdir, realpath, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { EbpError } from '../lib/errors.js';
import { desktopFileId, MAX_DESKTOP_FILE_BYTES, parseDesktopEntry, type DesktopEntry } from './desktop-entry.js';
import { execTakesFiles, expandExec, parseExec, type TakesFiles } from './exec.js';
import { createIconResolver } from './icons.js';
import type { AppSettings } from '../config/schema.js';

/** Per-launch sandbox settings: the configuration's own type. */
export type { AppSettings } from '../config/schema.js';

export interface SharePolicy {
  /** 'all', or the desktop file IDs to share. */
  readonly share: 'all' | readonly string[];
  /** Never shared, whatever `share` says. */
  readonly deny: readonly string[];
  readonly defaults: AppSettings;
  readonly perApp: Readonly<Record<string, Partial<AppSettings>>>;
}

/** An app defined in the configuration rather than by a desktop file. */
export interface ExtraApp {
  readonly id: string;
  readonly name: string;
  /** Exec line with the desktop-entry quoting and field codes (no string escapes). */
  readonly exec: string;
  readonly comment?: string;
  readonly icon?: string;
  readonly terminal?: boolean;
  readonly mimeTypes?: readonly string[];
  readonly categories?: readonly string[];
}

export interface SharedApp {
  readonly id: string;
  readonly name: string;
  readonly comment: string;
  readonly iconName?: string;
  readonly iconPath?: string;
  readonly terminal: boolean;
  readonly mimeTypes: readonly string[];
  readonly categories: readonly string[];
  /** Exec parsed into words, field codes not yet expanded. */
  readonly exec: readonly string[];
  /** Absolute path of the program (as found, not the symlink target: argv[0] can matter). */
  readonly program: string;
  readonly takesFiles: TakesFiles;
  /** Desktop file path, or 'config'. */
  readonly source: string;
  readonly settings: AppSettings;
}

export interface CatalogProblem {
  /** Desktop file path, or 'config'. */
  readonly file: string;
  readonly reason: string;
}

export interface SkippedApp {
  readonly id: string;
  /** Desktop file path, or 'config' for an ID of the share list that was not found. */
  readonly source: string;
  readonly reason: string;
}

export interface Catalog {
  /** Sorted by name. */
  readonly apps: readonly SharedApp[];
  /** Short hash of everything shared: changes when the set or any field changes. */
  readonly version: string;
  /** Invalid desktop files and configured apps (for `ebp doctor` and logs). */
  readonly problems: readonly CatalogProblem[];
  /** Valid entries the policy would share but that are not offered, with why. */
  readonly skipped: readonly SkippedApp[];
  get(id: string): SharedApp | undefined;
}

export interface LoadOptions {
  /** Earlier dirs win, as from xdgDataDirs(). */
  readonly dataDirs: readonly string[];
  readonly policy: SharePolicy;
  readonly extra?: readonly ExtraApp[];
  readonly locales?: readonly string[];
  /** Where programs named without a path are looked up; default /usr/local/bin:/usr/bin:/bin. */
  readonly pathDirs?: readonly string[];
  /** Icon size and theme for iconPath; default 48 and hicolor. */
  readonly iconSize?: number;
  readonly iconTheme?: string;
}

export const DEFAULT_PATH_DIRS: readonly string[] = ['/usr/local/bin', '/usr/bin', '/bin'];
/** Where a program may be named from: these are visible inside every sandbox. */
const VISIBLE_PREFIXES = ['/usr/', '/bin/', '/sbin/'];
/** Where a program must really be (after symlinks) for the sandbox to run it. */
const REAL_PREFIX = '/usr/';
const MAX_DIR_DEPTH = 8;
const MAX_DESKTOP_FILES = 20_000;
const APP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const CONTROL = /[\x00-\x1F\x7F]/;

export function appIdValid(id: string): boolean {
  return APP_ID.test(id);
}

/** XDG_DATA_HOME (default ~/.local/share) first, then XDG_DATA_DIRS (default /usr/local/share:/usr/share). */
export function xdgDataDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env['HOME'] !== undefined && env['HOME'] !== '' ? env['HOME'] : homedir();
  const dataHome = env['XDG_DATA_HOME'];
  const first = dataHome !== undefined && isAbsolute(dataHome) ? dataHome : join(home, '.local', 'share');
  const listed = (env['XDG_DATA_DIRS'] ?? '').split(':').filter((dir) => isAbsolute(dir));
  const rest = listed.length > 0 ? listed : ['/usr/local/share', '/usr/share'];
  const out: string[] = [];
  for (const dir of [first, ...rest]) {
    const clean = dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
    if (!out.includes(clean)) out.push(clean);
  }
  return out;
}

/** The argv to run in the sandbox: Exec with field codes expanded, argv[0] the resolved program. */
export function buildLaunchArgv(app: SharedApp, args: readonly string[]): string[] {
  const [, ...rest] = app.exec;
  return expandExec([app.program, ...rest], {
    args,
    name: app.name,
    ...(app.iconName === undefined ? {} : { icon: app.iconName }),
    ...(app.source === 'config' ? {} : { desktopFile: app.source }),
  });
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** An absolute path, or the first match on pathDirs; executable regular file (after symlinks). */
async function findExecutable(name: string, pathDirs: readonly string[]): Promise<string | undefined> {
  if (name === '' || name.includes('\0')) return undefined;
  if (name.includes('/')) return isAbsolute(name) && (await isExecutableFile(name)) ? name : undefined;
  for (const dir of pathDirs) {
    if (!isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

type ProgramResult = { readonly path: string } | { readonly reason: string };

async function resolveProgram(name: string, pathDirs: readonly string[]): Promise<ProgramResult> {
  const found = await findExecutable(name, pathDirs);
  if (found === undefined) return { reason: `program ${JSON.stringify(name)} not found or not executable` };
  if (!VISIBLE_PREFIXES.some((prefix) => found.startsWith(prefix))) {
    return { reason: `program ${found} is outside /usr, /bin and /sbin, which sandboxes cannot see` };
  }
  let real: string;
  try {
    real = await realpath(found);
  } catch {
    return { reason: `program ${found} cannot be resolved` };
  }
  if (!real.startsWith(REAL_PREFIX)) return { reason: `program ${found} is really ${real}, outside /usr, which sandboxes cannot see` };
  return { path: found };
}

interface DesktopFile {
  readonly id: string;
  readonly path: string;
}

/** Desktop files under one applications dir, in a stable order, with their desktop file IDs. */
async function listDesktopFiles(appsDir: string, budget: { left: number }): Promise<DesktopFile[]> {
  const out: DesktopFile[] = [];
  const walk = async (dir: string, relative: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (budget.left <= 0) return;
      const path = join(dir, entry.name);
      const rel = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        if (depth < MAX_DIR_DEPTH) await walk(path, rel, depth + 1);
      } else if (entry.name.endsWith('.desktop') && (entry.isFile() || entry.isSymbolicLink())) {
        budget.left -= 1;
        out.push({ id: desktopFileId(rel), path });
      }
    }
  };
  await walk(appsDir, '', 0);
  return out;
}

/** Reads at most the size limit; invalid UTF-8 is an error, not replacement characters. */
async function readDesktopFile(path: string): Promise<string> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new EbpError('CATALOG_INVALID', 'not a regular file');
    if (info.size > MAX_DESKTOP_FILE_BYTES) throw new EbpError('CATALOG_INVALID', `larger than ${MAX_DESKTOP_FILE_BYTES} bytes`);
    const buffer = Buffer.alloc(MAX_DESKTOP_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_DESKTOP_FILE_BYTES) throw new EbpError('CATALOG_INVALID', `larger than ${MAX_DESKTOP_FILE_BYTES} bytes`);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(0, length));
    } catch {
      throw new EbpError('CATALOG_INVALID', 'not valid UTF-8');
    }
  } finally {
    await handle.close();
  }
}

function reasonOf(error: unknown): string {
  if (error instanceof EbpError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

function mergeSettings(defaults: AppSettings, override: Partial<AppSettings> | undefined): AppSettings {
  const merged: { -readonly [K in keyof AppSettings]: AppSettings[K] } = { ...defaults };
  if (override !== undefined) {
    if (override.network !== undefined) merged.network = override.network;
    if (override.memoryBytes !== undefined) merged.memoryBytes = override.memoryBytes;
    if (override.cpus !== undefined) merged.cpus = override.cpus;
    if (override.pids !== undefined) merged.pids = override.pids;
    if (override.persistentHome !== undefined) merged.persistentHome = override.persistentHome;
  }
  return Object.freeze(merged);
}

/** JSON with object keys sorted, so equal content always hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const collator = new Intl.Collator('en', { sensitivity: 'base', numeric: true });

export async function loadCatalog(options: LoadOptions): Promise<Catalog> {
  const { policy } = options;
  const pathDirs = options.pathDirs ?? DEFAULT_PATH_DIRS;
  const locales = options.locales ?? [];
  const resolveIcon = createIconResolver({
    dataDirs: options.dataDirs,
    ...(options.iconSize === undefined ? {} : { size: options.iconSize }),
    ...(options.iconTheme === undefined ? {} : { theme: options.iconTheme }),
  });
  const deny = new Set(policy.deny);
  const allow = policy.share === 'all' ? undefined : new Set(policy.share);
  const apps = new Map<string, SharedApp>();
  const claimed = new Set<string>();
  const problems: CatalogProblem[] = [];
  const skipped: SkippedApp[] = [];

  const finish = async (fields: {
    id: string; name: string; comment: string; icon: string | undefined; terminal: boolean;
    mimeTypes: readonly string[]; categories: readonly string[]; exec: string; source: string;
  }): Promise<{ app: SharedApp } | { problem: string } | { skip: string }> => {
    let tokens: string[];
    try {
      tokens = parseExec(fields.exec);
    } catch (error) {
      return { problem: reasonOf(error) };
    }
    const program = await resolveProgram(tokens[0] ?? '', pathDirs);
    if ('reason' in program) return { skip: program.reason };
    const iconPath = fields.icon === undefined ? undefined : resolveIcon(fields.icon);
    const app: SharedApp = {
      id: fields.id,
      name: fields.name,
      comment: fields.comment,
      ...(fields.icon === undefined ? {} : { iconName: fields.icon }),
      ...(iconPath === undefined ? {} : { iconPath }),
      terminal: fields.terminal,
      mimeTypes: Object.freeze([...fields.mimeTypes]),
      categories: Object.freeze([...fields.categories]),
      exec: Object.freeze(tokens),
      program: program.path,
      takesFiles: execTakesFiles(tokens),
      source: fields.source,
      settings: mergeSettings(policy.defaults, policy.perApp[fields.id]),
    };
    return { app: Object.freeze(app) };
  };

  // Configured apps first: they are explicit, so they win over a desktop entry with the same ID.
  for (const extra of options.extra ?? []) {
    const label = `configured app ${JSON.stringify(extra.id.slice(0, 128))}`;
    if (!appIdValid(extra.id)) {
      problems.push({ file: 'config', reason: `${label}: invalid ID (letters, digits, . _ -; at most 128)` });
      continue;
    }
    if (claimed.has(extra.id)) {
      problems.push({ file: 'config', reason: `${label}: defined twice` });
      continue;
    }
    claimed.add(extra.id);
    if (deny.has(extra.id)) continue;
    if (extra.name.trim() === '' || CONTROL.test(extra.name) || (extra.comment !== undefined && CONTROL.test(extra.comment))) {
      problems.push({ file: 'config', reason: `${label}: name must be non-empty text without control characters` });
      continue;
    }
    const icon = extra.icon === undefined || extra.icon === '' ? undefined : extra.icon;
    const result = await finish({
      id: extra.id, name: extra.name, comment: extra.comment ?? '', icon, terminal: extra.terminal ?? false,
      mimeTypes: extra.mimeTypes ?? [], categories: extra.categories ?? [], exec: extra.exec, source: 'config',
    });
    if ('app' in result) apps.set(extra.id, result.app);
    else problems.push({ file: 'config', reason: `${label}: ${'problem' in result ? result.problem : result.skip}` });
  }

  const budget = { left: MAX_DESKTOP_FILES };
  for (const dataDir of options.dataDirs) {
    if (!isAbsolute(dataDir)) continue;
    for (const file of await listDesktopFiles(join(dataDir, 'applications'), budget)) {
      // The first data dir with an ID owns it, whatever that entry turns out to be.
      if (claimed.has(file.id)) continue;
      claimed.add(file.id);
      if (deny.has(file.id) || (allow !== undefined && !allow.has(file.id))) continue;
      if (!appIdValid(file.id)) {
        problems.push({ file: file.path, reason: `desktop file ID ${JSON.stringify(file.id.slice(0, 128))} is not a valid app ID` });
        continue;
      }
      let entry: DesktopEntry;
      try {
        entry = parseDesktopEntry(await readDesktopFile(file.path), { id: file.id, locales });
      } catch (error) {
        problems.push({ file: file.path, reason: reasonOf(error) });
        continue;
      }
      const skip = (reason: string): void => {
        skipped.push({ id: file.id, source: file.path, reason });
      };
      if (entry.type !== 'Application') {
        skip(`Type is ${entry.type}, not Application`);
        continue;
      }
      if (entry.hidden) {
        skip('Hidden=true');
        continue;
      }
      if (entry.noDisplay) {
        skip('NoDisplay=true');
        continue;
      }
      if (entry.exec === undefined) {
        skip('no Exec');
        continue;
      }
      if (entry.tryExec !== undefined && (await findExecutable(entry.tryExec, pathDirs)) === undefined) {
        skip(`TryExec ${JSON.stringify(entry.tryExec)} not found or not executable`);
        continue;
      }
      const result = await finish({
        id: entry.id, name: entry.name, comment: entry.comment ?? entry.genericName ?? '', icon: entry.icon,
        terminal: entry.terminal, mimeTypes: entry.mimeTypes, categories: entry.categories, exec: entry.exec, source: file.path,
      });
      if ('app' in result) apps.set(entry.id, result.app);
      else if ('problem' in result) problems.push({ file: file.path, reason: `desktop entry "${entry.id}": ${result.problem}` });
      else skip(result.skip);
    }
  }

  if (allow !== undefined) {
    for (const id of allow) {
      if (!claimed.has(id) && !deny.has(id)) skipped.push({ id, source: 'config', reason: 'in the share list, but no desktop entry or configured app has this ID' });
    }
  }

  const sorted = [...apps.values()].sort((a, b) => collator.compare(a.name, b.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const byId = [...apps.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const version = createHash('sha256').update(canonical(byId)).digest('hex').slice(0, 16);
  return Object.freeze({
    apps: Object.freeze(sorted),
    version,
    problems: Object.freeze(problems),
    skipped: Object.freeze(skipped),
    get: (id: string): SharedApp | undefined => apps.get(id),
  });
}
