// `ebp run PEER APP [ARGS...]`: run an app on a peer with the local terminal or pipes.
import { EbpError } from '../../lib/errors.js';
import { attach, localTerminal } from '../attach.js';
import type { Command } from '../command.js';
import { callDaemon } from '../../control/client.js';
import { flag, listOption } from '../args.js';
import { statSync } from 'node:fs';
import { launchOnPeer, localeEnv } from '../peer-access.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'run an app on a peer, here in this terminal',
  usage: 'ebp run [--share DIR[:ro]]... [--file PATH]... PEER APP [ARGS...] | ebp run --any APP [ARGS...]',
  description: `
Runs APP on PEER in a fresh sandbox there. PEER is a display name, a fingerprint prefix or
HOST:PORT (names need the local daemon, which knows the pool). With --any, the least-loaded
verified peer that offers APP runs it. With a terminal, the app gets a terminal
of its own on the peer, connected to this one (raw mode, resizes); otherwise stdin, stdout and
stderr are plain streams. Arguments are passed as data: the peer never gives them to a shell.

The person's files: for an app that opens files (its Exec has %f %F %u or %U), each argument
that names a local file is forwarded: the app sees it inside its sandbox (the argument is
rewritten to that path) and can read and save it in place; nothing else is exposed (an app
that saves by renaming a new file over the old one needs --share of the folder). --file PATH
forwards a file for any app (PATH is rewritten where it appears among the arguments, added at
the end otherwise). --share DIR exposes a whole folder, live: the app works on the files as they
are here, and its changes land here at once. A folder in your home appears at the same place in
the sandbox's home (~/Documents -> /home/ebp/Documents), any other under ~/Shared/NAME. Add :ro
to make it read-only. The files are served from here by OpenSSH's sftp-server, jailed with
bubblewrap so that it reaches only what you named; on the peer they are mounted only inside
that one sandbox, and unmounted when it ends. A launch with files dials the peer from this
process (a name or fingerprint is resolved by the local daemon first).

When the local daemon runs, the launch goes through its open connection to the peer (no new
handshake). On first contact the peer's key is remembered; a changed key is refused.

Exit status: the app's own; 128+N when it was killed by signal N; 255 when the peer cannot be
reached or the session breaks (the message says which); 1 when the owner denied the launch or
did not answer in time.`,
  stopAtOperand: true,
  options: {
    any: { type: 'boolean', description: 'run on the least-loaded verified peer that offers APP' },
    share: { type: 'string', value: 'DIR[:ro]', multiple: true, description: 'expose a local folder to the app, live (read-only with :ro)' },
    file: { type: 'string', value: 'PATH[:ro]', multiple: true, description: 'forward a local file to the app (its argument is rewritten)' },
  },
  async run({ args, paths, stderr }) {
    let peer: string | undefined;
    let app: string | undefined;
    let rest: string[];
    if (flag(args, 'any')) {
      [app, ...rest] = args.operands;
      if (app === undefined) throw new EbpError('USAGE', 'ebp run --any needs an APP');
      const picked = (await callDaemon(paths.runtimeDir, 'pick', { app })) as { peer: string; name: string };
      peer = picked.peer;
      stderr.write(`ebp: running ${app} on ${picked.name}\n`);
    } else {
      [peer, app, ...rest] = args.operands;
    }
    if (peer === undefined || app === undefined) throw new EbpError('USAGE', 'ebp run needs a PEER and an APP', { hint: 'ebp run PEER APP [ARGS...]; see the peers with `ebp peers` and their apps with `ebp apps PEER`' });
    const pty = localTerminal();
    const shares = listOption(args, 'share');
    const files = listOption(args, 'file');
    const spec = { peer, command: [app, ...rest], env: localeEnv(), ...(pty === undefined ? {} : { pty }) };
    // Files involved (named, or an argument that is a local file): this process dials the peer
    // itself and serves them (see files-launch.ts); otherwise the usual path.
    const launch = shares.length > 0 || files.length > 0 || rest.some(isLocalFile)
      ? await (await import('../files-launch.js')).launchWithFiles(paths, { ...spec, shares, files })
      : await launchOnPeer(paths, spec);
    try {
      const { status, exit } = await attach(launch.remote, { terminal: pty !== undefined });
      if (exit.kind === 'broken') stderr.write(`ebp: ${exit.message}\n`);
      return status;
    } finally {
      launch.done();
    }
  },
};

function isLocalFile(arg: string): boolean {
  if (arg === '' || arg.startsWith('-')) return false;
  try {
    return statSync(arg).isFile();
  } catch {
    return false;
  }
}
