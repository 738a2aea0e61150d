// `ebp sessions`, `ebp stop`: the launches running on this host.
import { callDaemon } from '../../control/client.js';
import type { SessionView } from '../../host/sessions.js';
import { EbpError } from '../../lib/errors.js';
import { formatSize } from '../../lib/units.js';
import type { Command } from '../command.js';

export const sessionsCommand: Command = {
  name: 'sessions',
  summary: 'list the apps peers are running on this host',
  usage: 'ebp sessions [--json]',
  description: 'Lists running sessions: id, peer, app, start time, CPU time and memory.',
  options: {},
  async run({ json, paths, stdout }) {
    const sessions = (await callDaemon(paths.runtimeDir, 'sessions')) as SessionView[];
    if (json) stdout.write(`${JSON.stringify(sessions, null, 2)}\n`);
    else if (sessions.length === 0) stdout.write('no running sessions\n');
    else {
      for (const s of sessions) {
        const usage = s.cpuSeconds === undefined ? '' : `  cpu ${s.cpuSeconds.toFixed(1)}s  mem ${formatSize(s.memoryBytes ?? 0)}`;
        stdout.write(`${s.id}  ${s.peerName} (${s.peerId})  ${s.app}  since ${s.startedAt}${usage}\n`);
      }
    }
    return 0;
  },
};

export const stopCommand: Command = {
  name: 'stop',
  summary: 'end a running session',
  usage: 'ebp stop ID',
  description: 'Ends session ID (SIGTERM, then everything in its sandbox is killed after 2 s).',
  options: {},
  async run({ args, json, paths, stdout }) {
    const [id] = args.operands;
    if (id === undefined || args.operands.length > 1) throw new EbpError('USAGE', 'ebp stop takes one session ID (see `ebp sessions`)');
    const result = await callDaemon(paths.runtimeDir, 'stop', { id });
    stdout.write(json ? `${JSON.stringify(result)}\n` : `stopped ${id}\n`);
    return 0;
  },
};
