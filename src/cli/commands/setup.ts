// `ebp setup`: one-time root preparation of this host; `--service` / `--user`: the daemon as a
// systemd service.
import { realpathSync } from 'node:fs';
import { EbpError } from '../../lib/errors.js';
import { setupSystem } from '../../setup/system.js';
import { flag } from '../args.js';
import type { Command, CommandContext } from '../command.js';

async function setupService({ args, json, stdout }: CommandContext): Promise<number> {
  const { installService, serviceCommands, systemdUnit, unitPath } = await import('../../setup/service.js');
  if (flag(args, 'service') && flag(args, 'user')) throw new EbpError('USAGE', '--service and --user exclude each other', { hint: 'the system service (as root) or your own (--user)' });
  const kind = flag(args, 'service') ? 'system' : 'user';
  const script = process.argv[1];
  if (script === undefined) throw new EbpError('INTERNAL', 'cannot tell where this ebp is installed');
  const ebpCommand = [process.execPath, realpathSync(script)];
  if (flag(args, 'dry-run')) {
    const unit = systemdUnit({ kind, ebpCommand });
    const file = unitPath(kind);
    if (json) stdout.write(`${JSON.stringify({ kind, unitFile: file, unit, ...serviceCommands(kind) }, null, 2)}\n`);
    else stdout.write(`# ${file}\n${unit}`);
    return 0;
  }
  const report = await installService({ kind, ebpCommand });
  if (json) {
    stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  if (report.userCreated) stdout.write('created system user ebp (the daemon runs as it)\n');
  stdout.write(`wrote ${report.unitFile}\n`);
  if (report.enabled) stdout.write('enabled and started ebp.service\n');
  else stdout.write(`systemd is not running here; where it runs, enable and start the service with:\n${report.todo.map((line) => `  ${kind === 'system' ? 'sudo ' : ''}${line}\n`).join('')}`);
  stdout.write(`logs: ${report.logs}\n`);
  return 0;
}

export const setupCommand: Command = {
  name: 'setup',
  summary: 'prepare this host once, as root (sandbox user, cgroups, state folders)',
  usage: 'sudo ebp setup [--json] | sudo ebp setup --service [--dry-run] | ebp setup --user [--dry-run]',
  description: `
Creates the unprivileged system user "ebp-sandbox" that sandboxes run as when the daemon runs as
root (bwrap never runs as root with a user namespace), the cgroup directories the sandboxes go
in (owned by that user, so no root is needed at run time), and the state folders. Safe to run
again: it only adds what is missing.

--service installs the daemon as a systemd system service (/etc/systemd/system/ebp.service): it
runs as the unprivileged system user "ebp" (made if missing) with a delegated cgroup subtree, its
state in /var/lib/ebp, configuration in /etc/ebp, control socket in /run/ebp. --user installs a
service of your own (~/.config/systemd/user/ebp.service). Both are enabled and started when
systemd runs here; otherwise ebp prints the commands to run. --dry-run prints the unit instead.`,
  options: {
    service: { type: 'boolean', description: 'install and enable the system service (as root)' },
    user: { type: 'boolean', description: 'install and enable a service for this user' },
    'dry-run': { type: 'boolean', description: 'with --service/--user: print the unit file, change nothing' },
  },
  async run(context) {
    const { args, json, paths, stdout } = context;
    if (flag(args, 'service') || flag(args, 'user')) return setupService(context);
    if (flag(args, 'dry-run')) throw new EbpError('USAGE', '--dry-run goes with --service or --user');
    const report = await setupSystem(paths);
    if (json) {
      stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    stdout.write(`${report.user.created ? 'created' : 'kept'} system user ${report.user.name} (uid ${report.user.uid})\n`);
    for (const dir of report.cgroupDirs) stdout.write(`cgroup directory ${dir}\n`);
    if (report.cgroupProblem !== undefined) stdout.write(`cgroups not prepared: ${report.cgroupProblem}\n`);
    stdout.write(`${report.tun}\n`);
    stdout.write(`${report.fuse}\n`);
    for (const dir of report.stateDirs) stdout.write(`state folder ${dir}\n`);
    return 0;
  },
};
