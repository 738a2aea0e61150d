// The daemon as a systemd service (`ebp setup --service`, `ebp setup --user`): the unit text comes
// from one pure function (unit-tested, checked with systemd-analyze verify); installing writes it,
// and enables it when systemd runs here, else says exactly what to run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { EbpError } from '../lib/errors.js';
import { lookupUser } from '../sandbox/privilege.js';
import { DAEMON_NODE_FLAGS } from '../daemon/node-flags.js';

export type ServiceKind = 'system' | 'user';

/** The unprivileged system user the system service runs the daemon as. */
export const SERVICE_USER = 'ebp';
export const UNIT_NAME = 'ebp.service';

export interface UnitOptions {
  readonly kind: ServiceKind;
  /** How to start ebp: absolute paths, e.g. [/usr/bin/node, /opt/ebp/bin/ebp]. */
  readonly ebpCommand: readonly string[];
  /** Extra `ebp up` arguments (e.g. --name, --port). */
  readonly upArgs?: readonly string[];
}

/** A word of ExecStart= per systemd's quoting: plain when safe, else double-quoted with escapes. */
export function quoteUnitWord(word: string): string {
  if (/[\p{Cc}]/u.test(word)) throw new EbpError('USAGE', 'a service command word cannot hold control characters');
  // `%` is a specifier and `$` a variable in ExecStart=: both are doubled to stay literal.
  const literal = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (literal !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(literal)) return literal;
  return `"${literal.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * The unit file. System: the daemon runs as the unprivileged user `ebp` (sandboxes use
 * unprivileged user namespaces, as for any user's daemon), in its own delegated cgroup subtree
 * (Delegate=yes: the per-sandbox cgroups live below it), with systemd-managed state, runtime and
 * configuration folders at the paths a root daemon uses (/var/lib/ebp, /run/ebp, /etc/ebp).
 * KillMode=mixed: SIGTERM goes to the daemon alone, which ends every session cleanly and says
 * goodbye on the LAN; whatever is left afterwards is killed.
 */
export function systemdUnit(options: UnitOptions): string {
  if (options.ebpCommand.length === 0 || !options.ebpCommand.every((word) => word.startsWith('/'))) {
    throw new EbpError('USAGE', 'the service command must start with absolute paths');
  }
  // The command is Node and ebp's script: the daemon's Node options go between them.
  const [node, ...script] = options.ebpCommand;
  const execStart = [node ?? '', ...DAEMON_NODE_FLAGS, ...script, 'up', ...(options.upArgs ?? [])].map(quoteUnitWord).join(' ');
  const common = [
    'Type=exec',
    `ExecStart=${execStart}`,
    'Delegate=yes',
    'KillMode=mixed',
    'TimeoutStopSec=30',
    'Restart=on-failure',
    'RestartSec=2',
  ];
  switch (options.kind) {
    case 'system':
      return [
        '[Unit]',
        'Description=eBrainPool daemon (shares this machine\'s apps with the LAN pool)',
        'After=network-online.target',
        'Wants=network-online.target',
        '',
        '[Service]',
        ...common,
        `User=${SERVICE_USER}`,
        `Group=${SERVICE_USER}`,
        // The XDG variables place state, config and the control socket where `sudo ebp ...` looks.
        'Environment=HOME=/var/lib/ebp XDG_STATE_HOME=/var/lib XDG_CONFIG_HOME=/etc XDG_RUNTIME_DIR=/run',
        'StateDirectory=ebp',
        'StateDirectoryMode=0700',
        'RuntimeDirectory=ebp',
        'RuntimeDirectoryMode=0700',
        'ConfigurationDirectory=ebp',
        'NoNewPrivileges=yes',
        '',
        '[Install]',
        'WantedBy=multi-user.target',
        '',
      ].join('\n');
    case 'user':
      return [
        '[Unit]',
        'Description=eBrainPool daemon for this user (shares this user\'s apps with the LAN pool)',
        '',
        '[Service]',
        ...common,
        '',
        '[Install]',
        'WantedBy=default.target',
        '',
      ].join('\n');
    default: {
      const never: never = options.kind;
      throw new Error(`unknown service kind ${String(never)}`);
    }
  }
}

/** Where the unit goes: /etc/systemd/system, or the user's $XDG_CONFIG_HOME/systemd/user. */
export function unitPath(kind: ServiceKind, env: NodeJS.ProcessEnv = process.env): string {
  if (kind === 'system') return join('/etc/systemd/system', UNIT_NAME);
  const xdg = env['XDG_CONFIG_HOME'];
  const config = xdg !== undefined && xdg.startsWith('/') ? xdg : join(env['HOME'] ?? homedir(), '.config');
  return join(config, 'systemd', 'user', UNIT_NAME);
}

/** The commands that enable and start the unit, and read its logs, as a person types them. */
export function serviceCommands(kind: ServiceKind): { enable: string[][]; logs: string } {
  const ctl = kind === 'system' ? ['systemctl'] : ['systemctl', '--user'];
  return {
    enable: [[...ctl, 'daemon-reload'], [...ctl, 'enable', '--now', UNIT_NAME]],
    logs: kind === 'system' ? `journalctl -u ${UNIT_NAME} -f` : `journalctl --user -u ${UNIT_NAME} -f`,
  };
}

/** Is a systemd manager of that kind running for us? */
export function systemdRunning(kind: ServiceKind, env: NodeJS.ProcessEnv = process.env): boolean {
  if (!existsSync('/run/systemd/system')) return false;
  if (kind === 'system') return true;
  const runtime = env['XDG_RUNTIME_DIR'];
  return runtime !== undefined && existsSync(join(runtime, 'systemd', 'private'));
}

export interface ServiceReport {
  readonly kind: ServiceKind;
  readonly unitFile: string;
  readonly unit: string;
  readonly userCreated: boolean;
  /** 'enabled' when systemd ran the commands; else the commands to run. */
  readonly enabled: boolean;
  readonly todo: readonly string[];
  readonly logs: string;
}

function ensureServiceUser(): boolean {
  if (lookupUser(SERVICE_USER) !== undefined) return false;
  const result = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/var/lib/ebp', '--shell', '/usr/sbin/nologin', '--comment', 'eBrainPool daemon', SERVICE_USER], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new EbpError('SANDBOX_SETUP_FAILED', `cannot create the system user ${SERVICE_USER}: ${result.stderr.trim() || String(result.error)}`, { hint: 'check that useradd (package passwd) is installed' });
  }
  return true;
}

/** Writes the unit (and, for the system service, makes its user), then enables it if systemd runs. */
export async function installService(options: UnitOptions & { env?: NodeJS.ProcessEnv }): Promise<ServiceReport> {
  const env = options.env ?? process.env;
  if (options.kind === 'system' && process.getuid?.() !== 0) {
    throw new EbpError('PRIVILEGE_REQUIRED', 'the system service is installed as root', { hint: 'sudo ebp setup --service (or ebp setup --user for a service of your own)' });
  }
  const unit = systemdUnit(options);
  const file = unitPath(options.kind, env);
  const userCreated = options.kind === 'system' ? ensureServiceUser() : false;
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, unit, { mode: 0o644 });
  const { enable, logs } = serviceCommands(options.kind);
  if (!systemdRunning(options.kind, env)) {
    return { kind: options.kind, unitFile: file, unit, userCreated, enabled: false, todo: enable.map((argv) => argv.join(' ')), logs };
  }
  for (const argv of enable) {
    const [program = 'systemctl', ...args] = argv;
    const result = spawnSync(program, args, { encoding: 'utf8', timeout: 60_000 });
    if (result.status !== 0) {
      throw new EbpError('SANDBOX_SETUP_FAILED', `${argv.join(' ')} failed: ${(result.stderr || String(result.error)).trim()}`, { hint: `see ${logs.replace(' -f', '')}` });
    }
  }
  return { kind: options.kind, unitFile: file, unit, userCreated, enabled: true, todo: [], logs };
}
