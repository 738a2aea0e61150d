// `ebp doctor`: what works on this host and the exact fix for what does not.
import { runChecks } from '../../doctor/checks.js';
import type { Command } from '../command.js';

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'check this host: sandbox engine, namespaces, cgroups, seccomp, network, files, X',
  usage: 'ebp doctor [--json]',
  description: `
Checks what this host offers: bubblewrap and its version, unprivileged user namespaces, seccomp,
cgroup v1/v2 and what is delegated to ebp, slirp4netns, FUSE and sshfs, X tools. Prints what
works and, for each problem, the exact command that fixes it. Exits 1 when a required check fails.`,
  options: {},
  async run({ json, stdout }) {
    const results = await runChecks();
    const failed = results.some((result) => result.required && !result.ok);
    if (json) {
      stdout.write(`${JSON.stringify({ ok: !failed, checks: results }, null, 2)}\n`);
      return failed ? 1 : 0;
    }
    for (const result of results) {
      const mark = result.ok ? 'ok  ' : result.required ? 'FAIL' : 'warn';
      stdout.write(`${mark} ${result.name}: ${result.detail}\n`);
      if (!result.ok && result.fix !== undefined) stdout.write(`     fix: ${result.fix}\n`);
    }
    stdout.write(failed ? '\nSandboxes cannot run here until the failures above are fixed.\n' : '\nThis host can run sandboxes.\n');
    return failed ? 1 : 0;
  },
};
