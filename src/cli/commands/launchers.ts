// `ebp install PEER APP`, `ebp uninstall PEER APP`, `ebp installed`: launchers in this person's
// menu for apps on peers, as though installed here.
import { realpathSync } from 'node:fs';
import { EbpError } from '../../lib/errors.js';
import { stringOption } from '../args.js';
import type { Command } from '../command.js';

/** How a launcher starts this very ebp: node and the ebp script, by absolute paths. */
function thisEbp(): string[] {
  const script = process.argv[1];
  if (script === undefined) throw new EbpError('INTERNAL', 'cannot tell where this ebp is installed');
  return [process.execPath, realpathSync(script)];
}

export const installCommand: Command = {
  name: 'install',
  summary: 'add a launcher for an app on a peer to this computer\'s menu',
  usage: 'ebp install PEER APP',
  description: `
Adds APP, as PEER shares it, to the applications menu of the person running this command
($XDG_DATA_HOME/applications), with its name, comment, icon (fetched from the peer and stored
under $XDG_DATA_HOME/ebp/icons), categories and MIME types. The menu shows where it runs, e.g.
"GIMP (on alice-laptop)". File managers offer it in "Open with" for those MIME types; the files
chosen there are passed to the app on the peer.

The launcher runs \`ebp run\` on the peer's key (its fingerprint): through the pool when the local
daemon finds it, else at the address it was reached at now. When the peer is away or refuses,
the launcher shows the error as a notification or dialog.

PEER is a name or fingerprint prefix (needs the local daemon) or HOST:PORT.`,
  options: {},
  async run({ args, json, paths, stdout, stderr }) {
    const [peer, app, ...extra] = args.operands;
    if (peer === undefined || app === undefined || extra.length > 0) throw new EbpError('USAGE', 'ebp install takes a PEER and an APP', { hint: 'ebp install PEER APP; see the apps with `ebp apps PEER`' });
    const { installLauncher } = await import('../../launchers/install.js');
    const explicit = stringOption(args, 'state-dir') ?? process.env['EBP_STATE_DIR'];
    const result = await installLauncher({
      paths, peer, appId: app, ebpCommand: thisEbp(),
      ...(explicit === undefined || explicit === '' ? {} : { stateDir: paths.stateDir }),
    });
    for (const warning of result.warnings) stderr.write(`ebp: ${warning}\n`);
    if (json) stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else stdout.write(`installed "${result.name}": ${result.file}${result.validation === 'skipped' ? ' (desktop-file-validate not installed: not checked)' : ''}\n`);
    return 0;
  },
};

export const uninstallCommand: Command = {
  name: 'uninstall',
  summary: 'remove a launcher that `ebp install` added',
  usage: 'ebp uninstall PEER APP',
  description: `
Removes the launcher of APP on PEER from this person's menu, and its stored icon. PEER is the
peer's name as shown by \`ebp installed\`, a fingerprint prefix or the address; the peer need not
be reachable.`,
  options: {},
  async run({ args, json, stdout }) {
    const [peer, app, ...extra] = args.operands;
    if (peer === undefined || app === undefined || extra.length > 0) throw new EbpError('USAGE', 'ebp uninstall takes a PEER and an APP', { hint: 'see them with `ebp installed`' });
    const { uninstallLauncher } = await import('../../launchers/install.js');
    const removed = uninstallLauncher(peer, app);
    stdout.write(json ? `${JSON.stringify(removed, null, 2)}\n` : `removed "${removed.name}" (${removed.file})\n`);
    return 0;
  },
};

export const installedCommand: Command = {
  name: 'installed',
  summary: 'list the launchers `ebp install` added',
  usage: 'ebp installed [--json]',
  description: `
Lists the launchers for apps on peers in this person's menu: the app, the peer (name and key
fingerprint), the address it was last reached at, and the desktop file.`,
  options: {},
  async run({ args, json, stdout }) {
    if (args.operands.length > 0) throw new EbpError('USAGE', 'ebp installed takes no operands');
    const { listLaunchers } = await import('../../launchers/install.js');
    const launchers = listLaunchers();
    if (json) stdout.write(`${JSON.stringify(launchers, null, 2)}\n`);
    else if (launchers.length === 0) stdout.write('no launchers installed (add one with `ebp install PEER APP`)\n');
    else stdout.write(`${launchers.map((l) => `${l.appId}  on ${l.peerName} (${l.fingerprint}, ${l.address})  ${l.file}`).join('\n')}\n`);
    return 0;
  },
};
