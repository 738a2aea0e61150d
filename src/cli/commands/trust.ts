// `ebp trust`, `ebp untrust`, `ebp trusted`: the keys this host runs apps for without asking.
import { readFileSync } from 'node:fs';
import type { StatePaths } from '../../config/paths.js';
import { callDaemon } from '../../control/client.js';
import { EbpError } from '../../lib/errors.js';
import { TrustStore, type TrustedKey } from '../../peer/trust-store.js';
import { stringOption } from '../args.js';
import type { Command } from '../command.js';

/** Through the daemon when it runs (it holds the list), else on the file directly. */
async function withTrust<T>(paths: StatePaths, op: string, params: Record<string, unknown>, direct: (store: TrustStore) => Promise<T> | T): Promise<T> {
  try {
    return (await callDaemon(paths.runtimeDir, op, params)) as T;
  } catch (error) {
    if (!(error instanceof EbpError) || error.code !== 'DAEMON_NOT_RUNNING') throw error;
  }
  return direct(await TrustStore.open(paths.stateDir));
}

function keyText(value: string): string {
  if (/^(ssh-|ecdsa-)/.test(value.trim())) return value.trim();
  try {
    return readFileSync(value, 'utf8').trim();
  } catch (error) {
    throw new EbpError('USAGE', `"${value}" is neither an OpenSSH public key nor a readable file`, { cause: error, hint: 'give the key text (ssh-ed25519 AAAA...) or a .pub file' });
  }
}

function line(key: TrustedKey): string {
  return `${key.fingerprint}  ${key.name}  (since ${key.addedAt})`;
}

export const trustCommand: Command = {
  name: 'trust',
  summary: 'trust a peer\'s key: its launches run without asking',
  usage: 'ebp trust --key FILE|KEY [--name NAME]',
  description: `
Adds an OpenSSH public key (the text, or a file holding it) to the keys this host trusts. Peers
with a trusted key run shared apps without an approval prompt. The other side prints its key
with \`ebp id --public-key\`.`,
  options: {
    key: { type: 'string', value: 'FILE|KEY', description: 'the public key, or a file with it' },
    name: { type: 'string', value: 'NAME', description: 'a name to remember it by' },
  },
  async run({ args, json, paths, stdout }) {
    const key = stringOption(args, 'key');
    if (key === undefined) throw new EbpError('USAGE', 'ebp trust needs --key FILE|KEY');
    const name = stringOption(args, 'name');
    const text = keyText(key);
    const added = await withTrust(paths, 'trust', { key: text, ...(name === undefined ? {} : { name }) }, (store) => store.add(text, name === undefined ? {} : { name }));
    stdout.write(json ? `${JSON.stringify(added)}\n` : `trusted ${line(added)}\n`);
    return 0;
  },
};

export const untrustCommand: Command = {
  name: 'untrust',
  summary: 'stop trusting a key (by fingerprint, prefix or name)',
  usage: 'ebp untrust ID',
  description: `
Removes a key from the trusted ones. ID is its fingerprint, a unique prefix of it, or its name.
Its later launches ask for approval again (or are refused under the trusted-only policy).`,
  options: {},
  async run({ args, json, paths, stdout }) {
    const [id] = args.operands;
    if (id === undefined || args.operands.length > 1) throw new EbpError('USAGE', 'ebp untrust takes one ID');
    const removed = await withTrust(paths, 'untrust', { id }, (store) => store.remove(id));
    stdout.write(json ? `${JSON.stringify(removed)}\n` : `no longer trusted: ${line(removed)}\n`);
    return 0;
  },
};

export const trustedCommand: Command = {
  name: 'trusted',
  summary: 'list the trusted keys',
  usage: 'ebp trusted [--json]',
  description: 'Lists the keys this host runs apps for without asking: fingerprint, name, since when.',
  options: {},
  async run({ json, paths, stdout }) {
    const keys = await withTrust(paths, 'trusted', {}, (store) => store.list());
    if (json) stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
    else stdout.write(keys.length === 0 ? 'no trusted keys\n' : `${keys.map(line).join('\n')}\n`);
    return 0;
  },
};
