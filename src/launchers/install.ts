// Launchers in the person's own menu for apps on peers (`ebp install/uninstall/installed`): finds
// the peer and its key, fetches the app's description and icon, writes a Desktop Entry into
// $XDG_DATA_HOME/applications whose Exec runs `ebp run` on that key, checks it with
// desktop-file-validate, and refreshes the MIME cache so that "Open with" offers it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import type { StatePaths } from '../config/paths.js';
import { callDaemon } from '../control/client.js';
import { queryPeer } from '../cli/peer-access.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { EbpError } from '../lib/errors.js';
import { which } from '../lib/which.js';
import { isFingerprint } from '../peer/keys.js';
import { KnownHosts, normalizeEndpoint } from '../peer/known-hosts.js';
import type { TakesFiles } from '../catalog/exec.js';
import { iconContentMatches, MAX_ICON_BYTES, type IconType } from '../catalog/icon-file.js';
import { desktopFileId, launcherEntry, parseLauncher, type LauncherRecord, type LauncherSpec } from './entry.js';

export interface LauncherDirs {
  /** $XDG_DATA_HOME/applications: where menus and file managers look for desktop files. */
  readonly applications: string;
  /** $XDG_DATA_HOME/ebp/icons: the icons fetched from peers, one per launcher. */
  readonly icons: string;
}

export function launcherDirs(env: NodeJS.ProcessEnv = process.env): LauncherDirs {
  const xdg = env['XDG_DATA_HOME'];
  const dataHome = xdg !== undefined && xdg.startsWith('/') ? xdg : join(env['HOME'] ?? homedir(), '.local', 'share');
  return { applications: join(dataHome, 'applications'), icons: join(dataHome, 'ebp', 'icons') };
}

export interface InstalledLauncher extends LauncherRecord {
  /** The desktop file's path. */
  readonly file: string;
}

export interface InstallResult extends InstalledLauncher {
  /** desktop-file-validate's verdict: 'passed', or 'skipped' when it is not installed. */
  readonly validation: 'passed' | 'skipped';
  readonly warnings: readonly string[];
}

export interface InstallOptions {
  readonly paths: StatePaths;
  /** A name or fingerprint prefix (through the local daemon) or HOST:PORT. */
  readonly peer: string;
  readonly appId: string;
  /** How the launcher starts ebp: absolute paths ([node, bin/ebp]). */
  readonly ebpCommand: readonly string[];
  /** Given when the state folder was chosen explicitly: the launcher passes it on. */
  readonly stateDir?: string;
  readonly env?: NodeJS.ProcessEnv;
}

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

interface PeerFound {
  readonly fingerprint: string;
  readonly address: string;
  readonly name: string;
}

/**
 * The peer's key and address. The key is the one a connection verified, never what the peer
 * says of itself: the pool's verified id when the daemon resolved the peer, else the key pinned
 * for that address at the connection the queries just made. A peer claiming another id is refused.
 */
async function locatePeer(paths: StatePaths, peer: string): Promise<PeerFound> {
  let address: string;
  let verified: string | undefined;
  if (HOST_PORT.test(peer)) {
    address = normalizeEndpoint(peer);
  } else {
    let target: { host: string; port: number; expectedFingerprint?: string };
    try {
      target = (await callDaemon(paths.runtimeDir, 'resolve', { peer })) as typeof target;
    } catch (error) {
      if (error instanceof EbpError && error.code === 'DAEMON_NOT_RUNNING') {
        throw new EbpError('DAEMON_NOT_RUNNING', `finding "${peer.slice(0, 80)}" by name needs the local daemon (it knows the pool)`, { hint: 'start it with `ebp up`, or give the peer as HOST:PORT' });
      }
      throw error;
    }
    address = normalizeEndpoint(target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`);
    verified = target.expectedFingerprint;
  }
  const status = parseJson(await queryPeer(paths, peer, 'ebp:status'), 'ebp:status');
  const claimedId = typeof status['id'] === 'string' ? status['id'] : undefined;
  const name = typeof status['name'] === 'string' ? status['name'] : address;
  const pinned = (await KnownHosts.open(paths.stateDir)).list().find((known) => known.endpoint === address)?.fingerprint;
  const fingerprint = verified ?? pinned;
  if (fingerprint === undefined || !isFingerprint(fingerprint)) {
    throw new EbpError('PEER_UNREACHABLE', `the key of ${address} is not known after connecting to it`, { hint: `try \`ebp apps ${address}\` first, then install again` });
  }
  if (claimedId !== undefined && claimedId !== fingerprint) {
    throw new EbpError('HOST_KEY_CHANGED', `${address} claims to be ${claimedId.slice(0, 80)} but its key is ${fingerprint}`, { hint: 'do not install launchers for this peer' });
  }
  return { fingerprint, address, name };
}

function parseJson(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EbpError('SESSION_BROKEN', `the peer's answer to ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

const TAKES: readonly TakesFiles[] = ['none', 'file', 'files', 'url', 'urls'];

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string').slice(0, 256) : [];
}

/** The app's description from the peer's catalogue (hostile input: shape checked here, text cleaned by the writer). */
export function appFromCatalog(answer: Record<string, unknown>, appId: string): LauncherSpec['app'] & { hasIcon: boolean } {
  const apps = Array.isArray(answer['apps']) ? (answer['apps'] as unknown[]) : [];
  const found = apps.find((app): app is Record<string, unknown> => typeof app === 'object' && app !== null && (app as Record<string, unknown>)['id'] === appId);
  if (found === undefined) {
    throw new EbpError('APP_NOT_SHARED', `the peer does not share "${appId.slice(0, 64)}"`, { hint: 'see its apps with `ebp apps PEER`' });
  }
  const takes = found['takesFiles'];
  return {
    id: appId,
    name: typeof found['name'] === 'string' ? found['name'] : appId,
    comment: typeof found['comment'] === 'string' ? found['comment'] : '',
    terminal: found['terminal'] === true,
    mimeTypes: stringList(found['mimeTypes']),
    categories: stringList(found['categories']),
    takesFiles: TAKES.find((value) => value === takes) ?? 'none',
    hasIcon: found['hasIcon'] === true,
  };
}

const ICON_EXTENSION: Readonly<Record<IconType, string>> = { 'image/png': 'png', 'image/svg+xml': 'svg', 'image/x-xpixmap': 'xpm' };

/**
 * The icon from the peer, checked: a known type, at most MAX_ICON_BYTES, and content that is
 * what it says (PNG signature, an <svg> document, an XPM header). Whatever it is, it is only
 * ever read by the local icon loader, never executed.
 */
export function decodeIcon(answer: Record<string, unknown>): { extension: string; data: Buffer } {
  const type = answer['type'];
  const base64 = answer['data'];
  if (typeof type !== 'string' || !(type in ICON_EXTENSION) || typeof base64 !== 'string') throw new EbpError('SESSION_BROKEN', 'the peer sent an icon of an unknown type');
  if (base64.length > Math.ceil(MAX_ICON_BYTES / 3) * 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) throw new EbpError('SESSION_BROKEN', 'the peer sent an icon that is too large or not base64');
  const data = Buffer.from(base64, 'base64');
  if (!iconContentMatches(type as IconType, data)) throw new EbpError('SESSION_BROKEN', `the peer's icon is not a valid ${type} file`);
  return { extension: ICON_EXTENSION[type as IconType], data };
}

/** desktop-file-validate's complaints about FILE ('' when it passes), or undefined when it is not installed. */
export function validateDesktopFile(file: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const program = which('desktop-file-validate', env);
  if (program === undefined) return undefined;
  const result = spawnSync(program, [file], { encoding: 'utf8', timeout: 10_000 });
  const output = `${result.stdout}${result.stderr}`.trim();
  if (result.status === 0 && !/error:/i.test(output)) return '';
  return output || `desktop-file-validate failed (status ${String(result.status)})`;
}

/** Lets menus and "Open with" see the change now (the MIME cache); harmless when the tool is missing. */
function refreshMenus(dirs: LauncherDirs, env: NodeJS.ProcessEnv): void {
  const program = which('update-desktop-database', env);
  if (program !== undefined) spawnSync(program, ['-q', dirs.applications], { stdio: 'ignore', timeout: 20_000 });
}

export async function installLauncher(options: InstallOptions): Promise<InstallResult> {
  const env = options.env ?? process.env;
  const dirs = launcherDirs(env);
  const peer = await locatePeer(options.paths, options.peer);
  const app = appFromCatalog(parseJson(await queryPeer(options.paths, options.peer, 'ebp:apps'), 'ebp:apps'), options.appId);
  const fileId = desktopFileId(peer.fingerprint, app.id);
  const file = join(dirs.applications, fileId);
  const warnings: string[] = [];
  let iconPath: string | undefined;
  if (app.hasIcon) {
    try {
      const icon = decodeIcon(parseJson(await queryPeer(options.paths, options.peer, `ebp:icon ${app.id}`), 'ebp:icon'));
      mkdirSync(dirs.icons, { recursive: true, mode: 0o755 });
      iconPath = join(dirs.icons, `${fileId.slice(0, -'.desktop'.length)}.${icon.extension}`);
      // A new icon type replaces the old file of another extension.
      removeIcons(dirs, fileId);
      await writeFileAtomic(iconPath, icon.data, { mode: 0o644 });
    } catch (error) {
      iconPath = undefined;
      warnings.push(`no icon: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const spec: LauncherSpec = {
    fingerprint: peer.fingerprint,
    address: peer.address,
    peerName: peer.name,
    app,
    ebpCommand: options.ebpCommand,
    ...(iconPath === undefined ? {} : { iconPath }),
    ...(options.stateDir === undefined ? {} : { stateDir: options.stateDir }),
  };
  const text = launcherEntry(spec);
  mkdirSync(dirs.applications, { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, text, { mode: 0o644 });
  const problems = validateDesktopFile(file, env);
  if (problems !== undefined && problems !== '') {
    rmSync(file, { force: true });
    removeIcons(dirs, fileId);
    throw new EbpError('INTERNAL', `the launcher ebp wrote does not pass desktop-file-validate:\n${problems}`, { hint: 'please report this as a bug of ebp' });
  }
  refreshMenus(dirs, env);
  const record = parseLauncher(text);
  if (record === undefined) throw new EbpError('INTERNAL', 'the launcher ebp wrote cannot be read back');
  return { ...record, file, validation: problems === undefined ? 'skipped' : 'passed', warnings };
}

/** The icons stored for one launcher (any extension). Only files in our own icon folder. */
function removeIcons(dirs: LauncherDirs, fileId: string): void {
  const stem = fileId.slice(0, -'.desktop'.length);
  for (const extension of Object.values(ICON_EXTENSION)) rmSync(join(dirs.icons, `${stem}.${extension}`), { force: true });
}

/** Every ebp launcher in the applications folder. */
export function listLaunchers(env: NodeJS.ProcessEnv = process.env): InstalledLauncher[] {
  const dirs = launcherDirs(env);
  let names: string[];
  try {
    names = readdirSync(dirs.applications);
  } catch {
    return [];
  }
  const found: InstalledLauncher[] = [];
  for (const name of names.filter((entry) => /^ebp-[0-9a-f]{12}-[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.desktop$/.test(entry)).sort()) {
    const file = join(dirs.applications, name);
    let record: LauncherRecord | undefined;
    try {
      record = parseLauncher(readFileSync(file, 'utf8'));
    } catch {
      record = undefined;
    }
    if (record !== undefined) found.push({ ...record, file });
  }
  return found;
}

/** Does PEER (as typed: name, fingerprint prefix, HOST:PORT) name this launcher's peer? */
function peerMatches(launcher: LauncherRecord, peer: string): boolean {
  const lower = peer.toLowerCase();
  if (launcher.peerName.toLowerCase() === lower || launcher.address === peer) return true;
  if (!/^(SHA256:)?[A-Za-z0-9+/]{4,43}$/.test(peer)) return false;
  return launcher.fingerprint.startsWith(peer.startsWith('SHA256:') ? peer : `SHA256:${peer}`);
}

/** Removes the launcher of APP on PEER and its icon; works while the peer is away. */
export function uninstallLauncher(peer: string, appId: string, env: NodeJS.ProcessEnv = process.env): InstalledLauncher {
  const dirs = launcherDirs(env);
  const matches = listLaunchers(env).filter((launcher) => launcher.appId === appId && peerMatches(launcher, peer));
  const [first] = matches;
  if (first === undefined) {
    throw new EbpError('NOT_FOUND', `no launcher for "${appId.slice(0, 64)}" on "${peer.slice(0, 80)}" is installed`, { hint: 'see them with `ebp installed`' });
  }
  if (matches.length > 1) {
    throw new EbpError('USAGE', `"${peer.slice(0, 80)}" matches several peers with "${appId.slice(0, 64)}":\n${matches.map((m) => `  ${m.peerName}  ${m.fingerprint}`).join('\n')}`, { hint: 'give a longer fingerprint prefix' });
  }
  rmSync(first.file, { force: true });
  // The icon path in the file is only trusted inside our own icon folder.
  if (first.iconPath !== undefined && resolve(first.iconPath).startsWith(`${dirs.icons}${sep}`)) rmSync(first.iconPath, { force: true });
  removeIcons(dirs, desktopFileId(first.fingerprint, first.appId));
  refreshMenus(dirs, env);
  return first;
}
