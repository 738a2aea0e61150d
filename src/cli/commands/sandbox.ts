// `ebp sandbox`: run a command locally in exactly the sandbox a remote launch gets.
import { EbpError } from '../../lib/errors.js';
import { parseDuration, parseSize } from '../../lib/units.js';
import { defaultEngine } from '../../sandbox/engine.js';
import { buildPolicy } from '../../sandbox/request.js';
import { flag, integerOption, listOption, numberOption, stringOption } from '../args.js';
import type { Command } from '../command.js';
import { runInTerminalOrPipes } from '../terminal.js';

export const sandboxCommand: Command = {
  name: 'sandbox',
  summary: 'run a command in a fresh sandbox, exactly as a remote launch runs',
  usage: 'ebp sandbox [OPTIONS] [--] COMMAND [ARGS...]',
  description: `
Runs COMMAND inside a new sandbox: its own user, pid, ipc, uts, cgroup, mount and network
namespaces; the host's /usr read-only; its own /etc, /home/ebp, /tmp and /dev; seccomp; a cgroup
with memory, pids and CPU limits. Nothing of the host's data, users, processes, X server or
network is visible. With a terminal, COMMAND gets its own pseudo-terminal.

Exit status: the command's own; 128+N when it was killed by signal N (137 for an out-of-memory
kill); 124 when --timeout ran out; 125 when the sandbox could not be set up; 126 when COMMAND is
not executable; 127 when it is not found.`,
  stopAtOperand: true,
  options: {
    net: { type: 'boolean', description: 'NAT network access through slirp4netns (default: loopback only)' },
    memory: { type: 'string', value: 'SIZE', description: 'memory limit, no swap (default 1G)' },
    pids: { type: 'string', value: 'N', description: 'most processes and threads at once (default 256)' },
    cpus: { type: 'string', value: 'FLOAT', description: 'CPU share in cores, e.g. 0.5 (default 1)' },
    home: { type: 'string', value: 'DIR', description: 'persistent home folder (default: an ephemeral one)' },
    'home-size': { type: 'string', value: 'SIZE', description: 'size of the ephemeral home (default 256M)' },
    share: { type: 'string', value: 'SRC[:DST][:ro]', multiple: true, description: 'make a host folder visible inside' },
    'tmp-size': { type: 'string', value: 'SIZE', description: 'size of /tmp (default 256M)' },
    timeout: { type: 'string', value: 'DURATION', description: 'kill the sandbox after this long (e.g. 30s, 5m)' },
  },
  async run({ args, paths, stderr }) {
    const engine = await defaultEngine({ cacheDir: paths.stateDir });
    const memory = stringOption(args, 'memory');
    const homeSize = stringOption(args, 'home-size');
    const tmpSize = stringOption(args, 'tmp-size');
    const timeout = stringOption(args, 'timeout');
    const home = stringOption(args, 'home');
    const pids = integerOption(args, 'pids', { min: 1, max: 1_000_000 });
    const cpus = numberOption(args, 'cpus', { min: 0.01, max: 1024 });
    if (args.operands.length === 0) throw new EbpError('USAGE', 'no command given', { hint: 'ebp sandbox [OPTIONS] -- COMMAND [ARGS...]' });
    const policy = buildPolicy(
      {
        command: args.operands,
        network: flag(args, 'net'),
        shares: listOption(args, 'share'),
        env: process.env,
        ...(memory === undefined ? {} : { memoryBytes: parseSize(memory, 'memory limit') }),
        ...(homeSize === undefined ? {} : { homeSizeBytes: parseSize(homeSize, 'home size') }),
        ...(tmpSize === undefined ? {} : { tmpSizeBytes: parseSize(tmpSize, '/tmp size') }),
        ...(timeout === undefined ? {} : { timeoutMs: parseDuration(timeout, 'timeout') }),
        ...(home === undefined ? {} : { homeDir: home }),
        ...(pids === undefined ? {} : { pids }),
        ...(cpus === undefined ? {} : { cpus }),
      },
      engine.identity,
    );
    const exit = await runInTerminalOrPipes(policy, engine);
    if (exit.message !== undefined) stderr.write(`ebp: ${exit.message}\n`);
    return exit.code;
  },
};
