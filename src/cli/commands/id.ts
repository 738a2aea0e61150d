// `ebp id`: this machine's name and key fingerprint, or its public key.
import { defaultConfigFile, loadConfig } from '../../config/load.js';
import { loadOrCreateIdentity } from '../../peer/identity.js';
import { flag } from '../args.js';
import type { Command } from '../command.js';

export const idCommand: Command = {
  name: 'id',
  summary: 'show this machine\'s name and key fingerprint (its peer id)',
  usage: 'ebp id [--public-key] [--json]',
  description: `
Prints this machine's display name and its peer id: the SHA256 fingerprint of its Ed25519 key,
as \`ssh-keygen -lf\` shows it. With --public-key, prints the public key in OpenSSH format, for
another machine's \`ebp trust --key\`. Makes the key on first use.`,
  options: {
    'public-key': { type: 'boolean', description: 'print the OpenSSH public key' },
  },
  async run({ args, json, paths, stdout }) {
    const [identity, config] = await Promise.all([loadOrCreateIdentity(paths.stateDir), loadConfig(defaultConfigFile(paths.configDir))]);
    if (flag(args, 'public-key')) {
      stdout.write(json ? `${JSON.stringify({ publicKey: identity.publicKey })}\n` : `${identity.publicKey}\n`);
      return 0;
    }
    stdout.write(json ? `${JSON.stringify({ name: config.name, id: identity.fingerprint })}\n` : `${config.name} ${identity.fingerprint}\n`);
    return 0;
  },
};
