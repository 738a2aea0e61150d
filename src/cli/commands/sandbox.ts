// `ebp sandbox`: run a command locally in exactly the sandbox a remote launch gets.
import { EbpError } from '../../lib/errors.js';
import { parseDuration, parseSize } from '../../lib/units.js';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { realpathSync } from 'node:fs';
import type { StatePaths } from '../../config/paths.js';
import { connectControl, controlSocketPath, readAnswer, throwIfError } from '../../control/client.js';
import { framedProcess } from '../../control/frames.js';
import type { SandboxRequest } from '../../sandbox/request.js';
import { attach } from '../attach.js';
import { localTerminal } from '../run-request.js';
import type { ParsedArgs } from '../args.js';
import { flag, integerOption, listOption, numberOption, stringOption } from '../args.js';
import type { Command } from '../command.js';

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
    'no-daemon': { type: 'boolean', description: 'set the sandbox up in this process even when the daemon runs' },
  },
  async run({ args, paths, stderr }) {
    requestFrom(args); // a bad option or no command fails here, before either path
    if (!flag(args, 'no-daemon')) {
      const status = await viaDaemon(args, paths, stderr);
      if (status !== undefined) return status;
    }
    // In this process: load the engine now (the daemon path above never needs it).
    const [{ defaultEngine }, { buildPolicy }, { runInTerminalOrPipes }] = await Promise.all([
      import('../../sandbox/engine.js'),
      import('../../sandbox/request.js'),
      import('../terminal.js'),
    ]);
    const engine = await defaultEngine({ cacheDir: paths.stateDir });
    const policy = buildPolicy({ ...requestFrom(args), shares: listOption(args, 'share'), env: process.env }, engine.identity);
    const exit = await runInTerminalOrPipes(policy, engine);
    if (exit.message !== undefined) stderr.write(`ebp: ${exit.message}\n`);
    return exit.code;
  },
};

/** Stands in for the share parser when there is nothing to share (never called). */
const NO_SHARES: Pick<typeof import('../../sandbox/request.js'), 'defaultShareTarget' | 'parseShareSpec'> = {
  defaultShareTarget: () => { throw new EbpError('INTERNAL', 'no share to place'); },
  parseShareSpec: () => { throw new EbpError('INTERNAL', 'no share to parse'); },
};

/**
 * The same sandbox, set up by the running daemon (same user: its control socket is ours alone),
 * which holds the engine already. Undefined when no daemon runs here.
 */
async function viaDaemon(args: ParsedArgs, paths: StatePaths, stderr: NodeJS.WriteStream): Promise<number | undefined> {
  const socket = await connectControl(controlSocketPath(paths.runtimeDir));
  if (socket === undefined) return undefined;
  const home = process.env['HOME'] ?? homedir();
  const shareSpecs = listOption(args, 'share');
  // Loaded only for shares: a plain command should not pay for the sandbox modules here.
  const { defaultShareTarget, parseShareSpec } = shareSpecs.length === 0 ? NO_SHARES : await import('../../sandbox/request.js');
  // Paths are made absolute here, against this shell's folder and home, not the daemon's.
  const shares = shareSpecs.map((text) => {
    const spec = parseShareSpec(text);
    let source: string;
    try {
      source = realpathSync(spec.source.startsWith('~/') ? `${home}/${spec.source.slice(2)}` : resolve(spec.source));
    } catch (error) {
      socket.destroy();
      throw new EbpError('USAGE', `cannot share "${spec.source}": no such file or folder`, { cause: error });
    }
    return `${source}:${spec.target ?? defaultShareTarget(source, home)}${spec.readOnly ? ':ro' : ''}`;
  });
  const terminal = localTerminal();
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && (key === 'LANG' || key === 'TERM' || key.startsWith('LC_'))) env[key] = value;
  const request = requestFrom(args);
  const params = {
    ...request,
    ...(request.homeDir === undefined ? {} : { homeDir: resolve(request.homeDir) }),
    shares,
    env,
    ...(terminal === undefined ? {} : { pty: { cols: terminal.cols, rows: terminal.rows } }),
  };
  socket.write(`${JSON.stringify({ op: 'sandbox', params })}\n`);
  const { answer, leftover } = await readAnswer(socket);
  throwIfError(answer);
  socket.resume();
  const { status, exit } = await attach(framedProcess(socket, leftover), { terminal: terminal !== undefined });
  if (exit.kind === 'code' && exit.message !== undefined) stderr.write(`ebp: ${exit.message}\n`);
  if (exit.kind === 'broken') stderr.write(`ebp: ${exit.message}\n`);
  return status;
}

/** The command and the sizes, limits and home as typed; one parser for both paths. */
function requestFrom(args: ParsedArgs): SandboxRequest {
  if (args.operands.length === 0) throw new EbpError('USAGE', 'no command given', { hint: 'ebp sandbox [OPTIONS] -- COMMAND [ARGS...]' });
  const memory = stringOption(args, 'memory');
  const homeSize = stringOption(args, 'home-size');
  const tmpSize = stringOption(args, 'tmp-size');
  const timeout = stringOption(args, 'timeout');
  const home = stringOption(args, 'home');
  const pids = integerOption(args, 'pids', { min: 1, max: 1_000_000 });
  const cpus = numberOption(args, 'cpus', { min: 0.01, max: 1024 });
  return {
    command: args.operands,
    network: flag(args, 'net'),
    ...(memory === undefined ? {} : { memoryBytes: parseSize(memory, 'memory limit') }),
    ...(homeSize === undefined ? {} : { homeSizeBytes: parseSize(homeSize, 'home size') }),
    ...(tmpSize === undefined ? {} : { tmpSizeBytes: parseSize(tmpSize, '/tmp size') }),
    ...(timeout === undefined ? {} : { timeoutMs: parseDuration(timeout, 'timeout') }),
    ...(home === undefined ? {} : { homeDir: home }),
    ...(pids === undefined ? {} : { pids }),
    ...(cpus === undefined ? {} : { cpus }),
  };
}
