// `ebp setup`: one-time root preparation of this host.
import { setupSystem } from '../../setup/system.js';
import type { Command } from '../command.js';

export const setupCommand: Command = {
  name: 'setup',
  summary: 'prepare this host once, as root (sandbox user, cgroups, state folders)',
  usage: 'sudo ebp setup [--json]',
  description: `
Creates the unprivileged system user "ebp-sandbox" that sandboxes run as when the daemon runs as
root (bwrap never runs as root with a user namespace), the cgroup directories the sandboxes go
in (owned by that user, so no root is needed at run time), and the state folders. Safe to run
again: it only adds what is missing.`,
  options: {},
  async run({ json, paths, stdout }) {
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
