// `ebp run PEER APP [ARGS...]`: run an app on a peer with the local terminal or pipes.
import { EbpError } from '../../lib/errors.js';
import { attach } from '../attach.js';
import { join } from 'node:path';
import type { Command, CommandContext } from '../command.js';
import { callDaemon } from '../../control/client.js';
import { flag, listOption, stringOption } from '../args.js';
import { launchOnPeer, type PeerLaunch } from '../peer-access.js';
import { isLocalFile, localeEnv, localTerminal } from '../run-request.js';
import { takeEarlyRun } from '../early-run.js';
import { launchWithFiles } from '../dial.js';
import type { RemoteProcess } from '../../transport/remote-process.js';
import type { LocalDisplay } from '../../display/x11-local.js';

/**
 * The display to forward, its cookie being made; undefined (not a promise) without DISPLAY or
 * with --no-x11, so that the launch request need not wait for it.
 */
function x11For(context: CommandContext): Promise<LocalDisplay | undefined> | undefined {
  const display = process.env['DISPLAY'];
  if (flag(context.args, 'no-x11') || display === undefined || display === '') return undefined;
  return prepareX11(context, display);
}

async function prepareX11(context: CommandContext, display: string): Promise<LocalDisplay | undefined> {
  const { args } = context;
  const trusted = flag(args, 'trusted-x11');
  if (trusted) {
    context.stderr.write('ebp: warning: --trusted-x11 gives the app full access to your display: it can read the whole screen and every window, log your keystrokes, and type or click into your other windows\n');
  }
  // Loaded only when there is a display: a launch without windows does not pay for it.
  const { prepareLocalDisplay } = await import('../../display/x11-local.js');
  try {
    return await prepareLocalDisplay({ display, trusted });
  } catch (error) {
    // Like ssh -X: a display that cannot be used must not stop a terminal app from running.
    if (!(error instanceof EbpError) || error.code !== 'DISPLAY_UNAVAILABLE') throw error;
    context.stderr.write(`ebp: warning: ${error.message.replace(/\.$/, '')}; running without windows (--no-x11 skips this)\n`);
    return undefined;
  }
}

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

Windows: when DISPLAY is set, the app's windows appear on this display (X11 forwarding, also
through the daemon). The app gets an untrusted cookie (X SECURITY extension, like ssh -X): it
cannot read the screen or other windows, nor send keys or clicks to them. --trusted-x11 lifts
that; --no-x11 forwards nothing.

Exit status: the app's own; 128+N when it was killed by signal N; 255 when the peer cannot be
reached or the session breaks (the message says which); 1 when the owner denied the launch or
did not answer in time.`,
  stopAtOperand: true,
  options: {
    any: { type: 'boolean', description: 'run on the least-loaded verified peer that offers APP' },
    address: { type: 'string', value: 'HOST:PORT', description: 'where to reach PEER (a full fingerprint) when the pool does not list it; its key must match' },
    'notify-errors': { type: 'boolean', description: 'also show errors as a desktop notification or dialog (for launchers started from a menu)' },
    share: { type: 'string', value: 'DIR[:ro]', multiple: true, description: 'expose a local folder to the app, live (read-only with :ro)' },
    file: { type: 'string', value: 'PATH[:ro]', multiple: true, description: 'forward a local file to the app (its argument is rewritten)' },
    'no-x11': { type: 'boolean', description: 'do not forward X11 (no windows), even with DISPLAY set' },
    'trusted-x11': { type: 'boolean', description: 'forward X11 with full access to this display (screen capture, input to other windows)' },
  },
  async run(context) {
    if (!flag(context.args, 'notify-errors')) return runOnPeer(context);
    // A menu launcher has no terminal: an error nobody sees is a launcher that "does nothing".
    const { notifyError } = await import('../../launchers/notify.js');
    const logFile = join(context.paths.stateDir, 'launcher-errors.log');
    // What the peer says when it refuses the launch (not shared, denied...) comes on the
    // session's stderr as "ebp: ..." lines: those are shown too when the launch fails.
    let peerSays = '';
    const watch = (remote: RemoteProcess): void => {
      remote.stderr.on('data', (chunk: Buffer) => { peerSays = (peerSays + chunk.toString()).slice(-8192); });
    };
    try {
      const status = await runOnPeer(context, { watch, onBroken: async (message) => { await notifyError('ebp: the app stopped', message, { logFile }); } });
      const ebpLines = peerSays.split(/\r?\n/).filter((line) => /^(ebp: |  fix: )/.test(line));
      if (status !== 0 && ebpLines.length > 0) await notifyError('ebp: the app did not run', ebpLines.join('\n'), { logFile });
      return status;
    } catch (error) {
      const message = error instanceof EbpError ? `${error.message}${error.hint === undefined ? '' : `\n${error.hint}`}` : String(error);
      await notifyError('ebp: cannot start the app', message, { logFile });
      throw error;
    }
  },
};

interface RunHooks {
  /** Sees the remote process before it is attached (extra listeners only). */
  readonly watch?: (remote: RemoteProcess) => void;
  readonly onBroken?: (message: string) => Promise<void>;
}

async function runOnPeer(context: CommandContext, hooks: RunHooks = {}): Promise<number> {
  // A plain launch (no options, display or files) went to the daemon before this code was even
  // loaded (early-run.ts): it is this command line's, and taking it over is all that is left.
  const early = takeEarlyRun();
  const { launch, terminal } = early === undefined
    ? await startLaunch(context)
    : { launch: await launchOnPeer(context.paths, early.spec, undefined, early.connection), terminal: early.spec.pty !== undefined };
  hooks.watch?.(launch.remote);
  try {
    // `ebp run` ends with the app's status (main.ts: exitAtOnce); with hooks, they run first.
    const exitWithStatus = hooks.watch === undefined && hooks.onBroken === undefined;
    const { status, exit } = await attach(launch.remote, { terminal, exitWithStatus, ...(launch.taken === undefined ? {} : { taken: launch.taken }) });
    if (exit.kind === 'broken') {
      context.stderr.write(`ebp: ${exit.message}\n`);
      await hooks.onBroken?.(exit.message);
    }
    return status;
  } finally {
    launch.done();
  }
}

async function startLaunch(context: CommandContext): Promise<{ launch: PeerLaunch; terminal: boolean }> {
  // context.stderr is used only when there is something to say (see contextFor).
  const { args, paths } = context;
  let peer: string | undefined;
  let app: string | undefined;
  let rest: string[];
  if (flag(args, 'any')) {
    [app, ...rest] = args.operands;
    if (app === undefined) throw new EbpError('USAGE', 'ebp run --any needs an APP');
    const picked = (await callDaemon(paths.runtimeDir, 'pick', { app })) as { peer: string; name: string };
    peer = picked.peer;
    context.stderr.write(`ebp: running ${app} on ${picked.name}\n`);
  } else {
    [peer, app, ...rest] = args.operands;
  }
  if (peer === undefined || app === undefined) throw new EbpError('USAGE', 'ebp run needs a PEER and an APP', { hint: 'ebp run PEER APP [ARGS...]; see the peers with `ebp peers` and their apps with `ebp apps PEER`' });
  const pty = localTerminal();
  // The display's cookie is made while the connection is opened (xauth is a process of its own).
  const display = x11For(context);
  const address = stringOption(args, 'address');
  const shares = listOption(args, 'share');
  const files = listOption(args, 'file');
  const spec = { peer, command: [app, ...rest], env: localeEnv(), ...(pty === undefined ? {} : { pty }), ...(address === undefined ? {} : { address }) };
  // Files involved (named, or an argument that is a local file): this process dials the peer
  // itself and serves them (see files-launch.ts); otherwise the usual path.
  const terminal = pty !== undefined;
  if (shares.length > 0 || files.length > 0 || rest.some(isLocalFile)) {
    const x11 = await display;
    return { launch: await launchWithFiles(paths, { ...spec, shares, files, ...(x11 === undefined ? {} : { x11 }) }), terminal };
  }
  return { launch: await launchOnPeer(paths, spec, display), terminal };
}
