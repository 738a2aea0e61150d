// `ebp peers`: the pool as this machine sees it, and the static peers for networks without
// multicast (`add`, `remove`), and forgetting a remembered key (`forget`).
import { callDaemon } from '../../control/client.js';
import { EbpError } from '../../lib/errors.js';
import type { PeerView } from '../../peer/directory.js';
import { KnownHosts } from '../../peer/known-hosts.js';
import { StaticPeers } from '../../peer/static-peers.js';
import { flag } from '../args.js';
import type { Command, CommandContext } from '../command.js';

interface PeersAnswer {
  readonly self: { readonly name: string; readonly id: string; readonly port: number };
  readonly peers: readonly PeerView[];
}

function table(answer: PeersAnswer): string {
  const lines = [`this machine: ${answer.self.name}  ${answer.self.id}  port ${answer.self.port}`];
  if (answer.peers.length === 0) lines.push('no peers found (yet)');
  for (const peer of answer.peers) {
    const trust = peer.trusted ? 'trusted' : 'untrusted';
    const apps = peer.apps === undefined ? '' : `  ${peer.apps} apps`;
    const load = peer.load === undefined ? '' : `  load ${peer.load}`;
    lines.push(`${peer.name}  ${peer.id ?? '(id unknown)'}  ${peer.addresses.join(',')} port ${peer.port}  ${peer.status}, ${trust}${apps}${load}  [${peer.source}]`);
  }
  return `${lines.join('\n')}\n`;
}

/** Changes to the lists go through the daemon when it runs (it holds them), else to the files. */
async function viaDaemonOr<T>(context: CommandContext, op: string, params: Record<string, unknown>, direct: () => Promise<T>): Promise<T> {
  try {
    return (await callDaemon(context.paths.runtimeDir, op, params)) as T;
  } catch (error) {
    if (error instanceof EbpError && error.code === 'DAEMON_NOT_RUNNING') return direct();
    throw error;
  }
}

export const peersCommand: Command = {
  name: 'peers',
  summary: 'the peers in the pool; add/remove static peers; forget a remembered key',
  usage: 'ebp peers [--json] [--watch] | ebp peers add HOST:PORT | ebp peers remove HOST:PORT | ebp peers forget HOST:PORT',
  description: `
Lists the peers the local daemon knows: found by DNS-SD on the LAN (_ebrainpool._tcp) or given
by address. For each: name, key fingerprint (its peer id), addresses, port, status (verified:
announced its id and a connection proved it; announced: id not proven yet; pinned: id learned at the first connection; unverified; impostor: its key
contradicts its announcement, never used; unreachable), whether this host trusts its key,
number of apps and load. --watch prints the list again when it changes.

  ebp peers add HOST:PORT      remember a peer where multicast does not reach
  ebp peers remove HOST:PORT   drop a static peer
  ebp peers forget HOST:PORT   forget the key remembered for an address (after a reinstall)

Commands that take PEER accept a display name, a fingerprint prefix or HOST:PORT.`,
  options: {
    watch: { type: 'boolean', description: 'keep printing the list as it changes (Ctrl-C stops)' },
  },
  async run(context) {
    const { args, json, paths, stdout } = context;
    const [sub, endpoint, ...extra] = args.operands;
    if (sub !== undefined) {
      if (endpoint === undefined || extra.length > 0) throw new EbpError('USAGE', `ebp peers ${sub} takes one HOST:PORT`);
      let result: unknown;
      switch (sub) {
        case 'add':
          result = await viaDaemonOr(context, 'peers-add', { endpoint }, async () => (await StaticPeers.open(paths.stateDir)).add(endpoint));
          break;
        case 'remove':
          result = await viaDaemonOr(context, 'peers-remove', { endpoint }, async () => (await StaticPeers.open(paths.stateDir)).remove(endpoint));
          break;
        case 'forget':
          result = await viaDaemonOr(context, 'peers-forget', { endpoint }, async () => (await KnownHosts.open(paths.stateDir)).forget(endpoint));
          break;
        default:
          throw new EbpError('USAGE', `unknown "ebp peers ${sub.slice(0, 32)}"`, { hint: 'ebp peers [add|remove|forget HOST:PORT]' });
      }
      stdout.write(json ? `${JSON.stringify({ [sub]: endpoint, result })}\n` : `${sub}: ${endpoint}${result === false ? ' (nothing was remembered for it)' : ''}\n`);
      return 0;
    }
    const show = async (): Promise<string> => {
      const answer = (await callDaemon(paths.runtimeDir, 'peers')) as PeersAnswer;
      return json ? `${JSON.stringify(answer.peers, null, 2)}\n` : table(answer);
    };
    let last = await show();
    stdout.write(last);
    if (!flag(args, 'watch')) return 0;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const next = await show();
      if (next !== last) {
        stdout.write(`\n${new Date().toISOString()}\n${next}`);
        last = next;
      }
    }
  },
};
