// `ebp name [NEW]`: this machine's display name in the pool; change it live.
import { callDaemon } from '../../control/client.js';
import { EbpError } from '../../lib/errors.js';
import type { Command } from '../command.js';

export const nameCommand: Command = {
  name: 'name',
  summary: 'show or change this machine\'s display name in the pool (live)',
  usage: 'ebp name [NEW-NAME]',
  description: `
Without an argument, prints the name the daemon announces (after any clash renaming, e.g.
"alice (2)"). With one, announces NEW-NAME from now on: peers see the change at once. To keep
it across restarts, set name in config.toml or start with --name.`,
  options: {},
  async run({ args, json, paths, stdout }) {
    const [wanted, ...extra] = args.operands;
    if (extra.length > 0) throw new EbpError('USAGE', 'ebp name takes at most one NEW-NAME (quote names with spaces)');
    if (wanted === undefined) {
      const status = (await callDaemon(paths.runtimeDir, 'peers')) as { self: { name: string } };
      stdout.write(json ? `${JSON.stringify(status.self)}\n` : `${status.self.name}\n`);
      return 0;
    }
    await callDaemon(paths.runtimeDir, 'rename', { name: wanted });
    stdout.write(json ? `${JSON.stringify({ name: wanted })}\n` : `now announced as ${wanted}\n`);
    return 0;
  },
};
