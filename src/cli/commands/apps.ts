// `ebp apps [PEER]`: the apps a peer shares, or this machine's own.
import type { AppView } from '../../daemon/catalog-source.js';
import { EbpError } from '../../lib/errors.js';
import type { Command } from '../command.js';
import { callDaemon } from '../../control/client.js';
import { flag } from '../args.js';
import { queryPeer } from '../peer-access.js';

function table(apps: readonly AppView[]): string {
  if (apps.length === 0) return 'no shared apps\n';
  const width = Math.max(...apps.map((app) => app.id.length)) + 2;
  return apps.map((app) => `${app.id.padEnd(width)}${app.terminal ? 'terminal' : 'GUI     '}  ${app.name}${app.comment === '' ? '' : ` - ${app.comment}`}${app.mimeTypes.length === 0 ? '' : ` [${app.mimeTypes.join(', ')}]`}`).join('\n') + '\n';
}

export const appsCommand: Command = {
  name: 'apps',
  summary: 'list the apps a peer shares (or this machine\'s own)',
  usage: 'ebp apps [PEER] [--json] | ebp apps --all',
  description: `
Lists the apps PEER (a name, fingerprint prefix or HOST:PORT) shares: id, terminal or GUI,
name, comment and MIME types. Without PEER, lists what this machine shares. With --all, the
whole pool's catalogue: each app and the peers that offer it (needs the local daemon).`,
  options: {
    all: { type: 'boolean', description: 'the whole pool: every app and which peers offer it' },
  },
  async run({ args, json, paths, stdout }) {
    const [peer, ...extra] = args.operands;
    if (extra.length > 0) throw new EbpError('USAGE', 'ebp apps takes at most one PEER');
    if (flag(args, 'all')) {
      const pool = (await callDaemon(paths.runtimeDir, 'pool-apps')) as { id: string; name: string; comment: string; terminal: boolean; peers: string[] }[];
      if (json) stdout.write(`${JSON.stringify(pool, null, 2)}\n`);
      else stdout.write(pool.length === 0 ? 'no apps in the pool\n' : `${pool.map((a) => `${a.id}  ${a.name}  on: ${a.peers.join(', ')}`).join('\n')}\n`);
      return 0;
    }
    let view: { version: string; apps: AppView[] };
    if (peer === undefined) {
      const [{ catalogFromConfig, catalogView }, { loadConfig, defaultConfigFile }] = await Promise.all([
        import('../../daemon/catalog-source.js'),
        import('../../config/load.js'),
      ]);
      view = catalogView(await catalogFromConfig(await loadConfig(defaultConfigFile(paths.configDir))));
    } else {
      view = JSON.parse(await queryPeer(paths, peer, 'ebp:apps')) as { version: string; apps: AppView[] };
    }
    stdout.write(json ? `${JSON.stringify(view.apps, null, 2)}\n` : table(view.apps));
    return 0;
  },
};
