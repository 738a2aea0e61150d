// Errors of a launch started from a menu, where no terminal shows stderr: a desktop notification
// (notify-send), else a dialog (zenity, xmessage), else a line in a log file. The message is
// passed as one argument, never through a shell.
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { which } from '../lib/which.js';

export type NotifyOutcome = { readonly kind: 'shown'; readonly tool: string } | { readonly kind: 'logged'; readonly file: string } | { readonly kind: 'failed'; readonly reason: string };

const MAX_MESSAGE_CHARS = 2000;

/** The first tool that can show MESSAGE in this session, with its argv. Pure but for PATH lookups. */
export function notifier(title: string, message: string, env: NodeJS.ProcessEnv): { tool: string; argv: string[] } | undefined {
  const graphical = (env['DISPLAY'] ?? '') !== '' || (env['WAYLAND_DISPLAY'] ?? '') !== '';
  const bus = (env['DBUS_SESSION_BUS_ADDRESS'] ?? '') !== '' || (env['XDG_RUNTIME_DIR'] ?? '') !== '';
  // The message may quote the peer (hostile): no control characters, and for notify-send, whose
  // body is markup, no tags (an <img> or <a> must stay text).
  const text = message.replace(/[\x00-\x09\x0b-\x1f\x7f]/g, ' ').slice(0, MAX_MESSAGE_CHARS);
  const markup = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const candidates: [string, string[], boolean][] = [
    // `--` ends notify-send's options: a message starting with "-" stays the message.
    ['notify-send', ['--app-name=ebp', '--urgency=critical', '--', title, markup], bus],
    ['zenity', ['--error', '--title', title, '--no-markup', '--text', text], graphical],
    ['xmessage', ['-center', '-title', title, `${title}\n\n${text}`], (env['DISPLAY'] ?? '') !== ''],
  ];
  for (const [name, args, usable] of candidates) {
    if (!usable) continue;
    const path = which(name, env);
    if (path !== undefined) return { tool: name, argv: [path, ...args] };
  }
  return undefined;
}

/** Shows the error; when nothing can show it, appends it to LOGFILE. Never throws. */
export async function notifyError(title: string, message: string, options: { env?: NodeJS.ProcessEnv; logFile: string }): Promise<NotifyOutcome> {
  const env = options.env ?? process.env;
  const chosen = notifier(title, message, env);
  if (chosen !== undefined) {
    const [program = '', ...args] = chosen.argv;
    const started = await new Promise<boolean>((resolve) => {
      const child = spawn(program, args, { stdio: 'ignore', env, detached: true });
      child.once('error', () => { resolve(false); });
      // notify-send returns at once; a dialog stays up: do not wait for it, just for the start.
      child.once('spawn', () => {
        child.unref();
        resolve(true);
      });
    });
    if (started) return { kind: 'shown', tool: chosen.tool };
  }
  try {
    mkdirSync(dirname(options.logFile), { recursive: true, mode: 0o700 });
    const line = message.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, MAX_MESSAGE_CHARS);
    appendFileSync(options.logFile, `${new Date().toISOString()} ${title}: ${line}\n`, { mode: 0o600 });
    return { kind: 'logged', file: options.logFile };
  } catch (error) {
    return { kind: 'failed', reason: error instanceof Error ? error.message : String(error) };
  }
}
