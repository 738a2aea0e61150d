// `ebp ui`: open the local web page (the pool, launches, approvals) in the browser, logged in with
// the daemon's token; --print-url prints the URL instead.
import { spawn } from 'node:child_process';
import { callDaemon } from '../../control/client.js';
import { flag } from '../args.js';
import type { Command } from '../command.js';

export const uiCommand: Command = {
  name: 'ui',
  summary: 'open the pool in the browser (the local web page)',
  usage: 'ebp ui [--print-url]',
  description: `
Opens the running daemon's web page in the browser: every peer with its apps, search, launches
in the page (terminal apps in a terminal, the others on a display of their own), and this machine's approvals, sessions, shared apps
and trusted keys. The page listens on 127.0.0.1 only and needs a secret token, which the URL
carries once (the browser then keeps it in a cookie). Treat the URL like a password.`,
  options: {
    'print-url': { type: 'boolean', description: 'print the URL (with its token) instead of opening a browser' },
  },
  async run({ args, paths, stdout, json }) {
    const { url } = (await callDaemon(paths.runtimeDir, 'ui')) as { url: string; port: number };
    if (flag(args, 'print-url') || json) {
      stdout.write(json ? `${JSON.stringify({ url })}\n` : `${url}\n`);
      return 0;
    }
    // The URL goes as one argument (no shell); if there is no opener, it is printed.
    const opener = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
    const opened = await new Promise<boolean>((resolve) => {
      opener.once('error', () => { resolve(false); });
      opener.once('spawn', () => { resolve(true); });
    });
    opener.unref();
    stdout.write(opened ? `opened ${url.replace(/\?token=.*/, '')} in the browser\n` : `no browser opener (xdg-open) here; open this URL:\n${url}\n`);
    return 0;
  },
};
