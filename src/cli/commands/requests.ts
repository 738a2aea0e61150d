// `ebp requests`, `ebp allow`, `ebp deny`: the owner's answers to pending launches.
import { callDaemon } from '../../control/client.js';
import { EbpError } from '../../lib/errors.js';
import type { PendingRequest } from '../../host/approvals.js';
import { flag } from '../args.js';
import type { Command } from '../command.js';

export const requestsCommand: Command = {
  name: 'requests',
  summary: 'list launches waiting for your approval',
  usage: 'ebp requests [--json]',
  description: 'Lists pending launch requests from keys this host does not trust: id, peer name, fingerprint, app, time.',
  options: {},
  async run({ json, paths, stdout }) {
    const pending = (await callDaemon(paths.runtimeDir, 'requests')) as PendingRequest[];
    if (json) stdout.write(`${JSON.stringify(pending, null, 2)}\n`);
    else if (pending.length === 0) stdout.write('no pending requests\n');
    else for (const r of pending) stdout.write(`${r.id}  ${r.peerName} (${r.peerId}) wants to run ${r.appName} [${r.app}]  ${r.time}\n`);
    return 0;
  },
};

function decide(decision: 'allow' | 'deny'): Command['run'] {
  return async ({ args, json, paths, stdout }) => {
    const [id] = args.operands;
    if (id === undefined || args.operands.length > 1) throw new EbpError('USAGE', `ebp ${decision} takes one request ID (see \`ebp requests\`)`);
    const always = decision === 'allow' && flag(args, 'always');
    const request = (await callDaemon(paths.runtimeDir, 'decide', { id, decision: always ? 'always' : decision })) as PendingRequest;
    stdout.write(json ? `${JSON.stringify({ ...request, decision: always ? 'always' : decision })}\n` : `${decision === 'allow' ? (always ? 'allowed, and trusted from now on' : 'allowed once') : 'denied'}: ${request.peerName} running ${request.appName}\n`);
    return 0;
  };
}

export const allowCommand: Command = {
  name: 'allow',
  summary: 'allow a pending launch (--always: trust that key from now on)',
  usage: 'ebp allow ID [--always]',
  description: 'Allows the pending request ID. With --always, the requesting key is also trusted from now on.',
  options: { always: { type: 'boolean', description: 'trust this key from now on' } },
  run: decide('allow'),
};

export const denyCommand: Command = {
  name: 'deny',
  summary: 'deny a pending launch',
  usage: 'ebp deny ID',
  description: 'Denies the pending request ID; the requester is told it was denied.',
  options: {},
  run: decide('deny'),
};
