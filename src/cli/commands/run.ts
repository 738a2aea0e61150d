// `ebp run PEER APP [ARGS...]`: run an app on a peer with the local terminal or pipes.
import { EbpError } from '../../lib/errors.js';
import { attach, localTerminal } from '../attach.js';
import type { Command } from '../command.js';
import { callDaemon } from '../../control/client.js';
import { flag } from '../args.js';
import { launchOnPeer, localeEnv } from '../peer-access.js';
import type { ParsedArgs } from '../args.js';
import type { LocalDisplay } from '../../display/x11-local.js';

/** The display to forward, with its cookie made; undefined without DISPLAY or with --no-x11. */
async function x11For(args: ParsedArgs, stderr: NodeJS.WriteStream): Promise<LocalDisplay | undefined> {
  const display = process.env['DISPLAY'];
  if (flag(args, 'no-x11') || display === undefined || display === '') return undefined;
  const trusted = flag(args, 'trusted-x11');
  if (trusted) {
    stderr.write('ebp: warning: --trusted-x11 gives the app full access to your display: it can read the whole screen and every window, log your keystrokes, and type or click into your other windows\n');
  }
  // Loaded only when there is a display: a launch without windows does not pay for it.
  const { prepareLocalDisplay } = await import('../../display/x11-local.js');
  try {
    return await prepareLocalDisplay({ display, trusted });
  } catch (error) {
    // Like ssh -X: a display that cannot be used must not stop a terminal app from running.
    if (!(error instanceof EbpError) || error.code !== 'DISPLAY_UNAVAILABLE') throw error;
    stderr.write(`ebp: warning: ${error.message.replace(/\.$/, '')}; running without windows (--no-x11 skips this)\n`);
    return undefined;
  }
}

export const runCommand: Command = {
  name: 'run',
  summary: 'run an app on a peer, here in this terminal',
  usage: 'ebp run PEER APP [ARGS...] | ebp run --any APP [ARGS...]',
  description: `
Runs APP on PEER in a fresh sandbox there. PEER is a display name, a fingerprint prefix or
HOST:PORT (names need the local daemon, which knows the pool). With --any, the least-loaded
verified peer that offers APP runs it. With a terminal, the app gets a terminal
of its own on the peer, connected to this one (raw mode, resizes); otherwise stdin, stdout and
stderr are plain streams. Arguments are passed as data: the peer never gives them to a shell.

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
    'no-x11': { type: 'boolean', description: 'do not forward X11 (no windows), even with DISPLAY set' },
    'trusted-x11': { type: 'boolean', description: 'forward X11 with full access to this display (screen capture, input to other windows)' },
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
    const x11 = await x11For(args, stderr);
    const launch = await launchOnPeer(paths, { peer, command: [app, ...rest], env: localeEnv(), ...(pty === undefined ? {} : { pty }), ...(x11 === undefined ? {} : { x11 }) });
    try {
      const { status, exit } = await attach(launch.remote, { terminal: pty !== undefined });
      if (exit.kind === 'broken') stderr.write(`ebp: ${exit.message}\n`);
      return status;
    } finally {
      launch.done();
    }
  },
};
