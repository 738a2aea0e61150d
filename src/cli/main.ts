// The `ebp` command line: finds the command, parses its options, runs it, maps errors to exit
// statuses. Commands are thin; the work happens in the domain folders.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EbpError } from '../lib/errors.js';
import { packageRoot } from '../lib/package-root.js';
import { GLOBAL_OPTIONS, formatOptions, parseArgs } from './args.js';
import { commandHelp, contextFor, type Command } from './command.js';

/**
 * Commands are loaded on use: a launch should not pay for the sandbox engine's FFI or the SSH
 * library, so each command module is imported only when it runs.
 */
interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  readonly load: () => Promise<Command>;
  /**
   * Nothing of the command is left running once it returns (`sandbox` has removed its cgroup and
   * restored the terminal; `run` has the app's exit status, has restored the terminal and closed
   * its connection): the process may exit at once instead of tearing its heap down, a few
   * milliseconds of every one-shot sandbox or launch.
   */
  readonly exitAtOnce?: true;
}

const COMMANDS: readonly CommandEntry[] = [
  { name: 'up', summary: 'run the daemon: share this machine\'s apps with peers', load: async () => (await import('./commands/up.js')).upCommand },
  { name: 'run', summary: 'run an app on a peer, here in this terminal', load: async () => (await import('./commands/run.js')).runCommand, exitAtOnce: true },
  { name: 'install', summary: 'add a launcher for an app on a peer to this computer\'s menu', load: async () => (await import('./commands/launchers.js')).installCommand },
  { name: 'uninstall', summary: 'remove a launcher that `ebp install` added', load: async () => (await import('./commands/launchers.js')).uninstallCommand },
  { name: 'installed', summary: 'list the launchers `ebp install` added', load: async () => (await import('./commands/launchers.js')).installedCommand },
  { name: 'apps', summary: 'list the apps a peer shares (or this machine\'s own)', load: async () => (await import('./commands/apps.js')).appsCommand },
  { name: 'peers', summary: 'the peers in the pool; add/remove static peers; forget a key', load: async () => (await import('./commands/peers.js')).peersCommand },
  { name: 'name', summary: 'show or change this machine\'s display name in the pool (live)', load: async () => (await import('./commands/name.js')).nameCommand },
  { name: 'id', summary: 'show this machine\'s name and key fingerprint (its peer id)', load: async () => (await import('./commands/id.js')).idCommand },
  { name: 'trust', summary: 'trust a peer\'s key: its launches run without asking', load: async () => (await import('./commands/trust.js')).trustCommand },
  { name: 'untrust', summary: 'stop trusting a key (by fingerprint, prefix or name)', load: async () => (await import('./commands/trust.js')).untrustCommand },
  { name: 'trusted', summary: 'list the trusted keys', load: async () => (await import('./commands/trust.js')).trustedCommand },
  { name: 'requests', summary: 'list launches waiting for your approval', load: async () => (await import('./commands/requests.js')).requestsCommand },
  { name: 'allow', summary: 'allow a pending launch (--always: trust that key from now on)', load: async () => (await import('./commands/requests.js')).allowCommand },
  { name: 'deny', summary: 'deny a pending launch', load: async () => (await import('./commands/requests.js')).denyCommand },
  { name: 'sessions', summary: 'list the apps peers are running on this host', load: async () => (await import('./commands/sessions.js')).sessionsCommand },
  { name: 'stop', summary: 'end a running session', load: async () => (await import('./commands/sessions.js')).stopCommand },
  { name: 'ui', summary: 'open the pool in the browser (the local web page)', load: async () => (await import('./commands/ui.js')).uiCommand },
  { name: 'sandbox', summary: 'run a command in a fresh sandbox, exactly as a remote launch runs', load: async () => (await import('./commands/sandbox.js')).sandboxCommand, exitAtOnce: true },
  { name: 'doctor', summary: 'check this host: sandbox engine, namespaces, cgroups, seccomp, files, X', load: async () => (await import('./commands/doctor.js')).doctorCommand },
  { name: 'setup', summary: 'prepare this host once, as root (sandbox user, cgroups, state folders)', load: async () => (await import('./commands/setup.js')).setupCommand },
  { name: 'demo', summary: 'a pool of N peers on this machine, in network namespaces, to try things on', load: async () => (await import('./commands/demo.js')).demoCommand },
];

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length)) + 2;
  return [
    'Usage: ebp [--state-dir DIR] [--json] COMMAND [OPTIONS] [ARGS...]',
    '',
    'eBrainPool: the computers on a LAN as one pool of applications, every launch in a sandbox.',
    '',
    'Commands:',
    ...COMMANDS.map((command) => `  ${command.name.padEnd(width)}${command.summary}`),
    '',
    'Global options (before or after the command):',
    formatOptions(GLOBAL_OPTIONS),
    '      --version        print ebp\'s version and exit',
    '',
    'Run `ebp COMMAND --help` for a command\'s options.',
    '',
  ].join('\n');
}

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

/** Splits off the command name: the first word that is not a global option or its value. */
function findCommand(argv: readonly string[]): { name: string | undefined; rest: string[] } {
  for (let index = 0; index < argv.length; index += 1) {
    const token = argv[index] ?? '';
    if (token === '--') break;
    if (token === '--state-dir') {
      index += 1;
      continue;
    }
    if (token.startsWith('-')) continue;
    return { name: token, rest: [...argv.slice(0, index), ...argv.slice(index + 1)] };
  }
  return { name: undefined, rest: [...argv] };
}

/** Whether the entry point may end the process as soon as main() returns (see exitAtOnce). */
export function exitsAtOnce(argv: readonly string[]): boolean {
  const { name } = findCommand(argv);
  return COMMANDS.find((candidate) => candidate.name === name)?.exitAtOnce === true;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    const { name, rest } = findCommand(argv);
    if (name === undefined && rest.includes('--version')) {
      process.stdout.write(`ebp ${packageVersion()}\n`);
      return 0;
    }
    if (name === undefined || name === 'help') {
      const topic = name === 'help' ? COMMANDS.find((command) => command.name === rest[0]) : undefined;
      process.stdout.write(topic === undefined ? topHelp() : commandHelp(await topic.load()));
      if (name === undefined && !rest.includes('--help') && !rest.includes('-h')) return 2;
      return 0;
    }
    const entry = COMMANDS.find((candidate) => candidate.name === name);
    if (entry === undefined) {
      throw new EbpError('USAGE', `unknown command "${name}"`, { hint: `commands: ${COMMANDS.map((c) => c.name).join(', ')}; see ebp --help` });
    }
    const command = await entry.load();
    const args = parseArgs(rest, command.options, command.stopAtOperand === true ? { stopAtOperand: true } : {});
    if (args.values['help'] === true) {
      process.stdout.write(commandHelp(command));
      return 0;
    }
    return await command.run(contextFor(args));
  } catch (error) {
    return reportError(error);
  }
}

function reportError(error: unknown): number {
  if (error instanceof EbpError) {
    process.stderr.write(`ebp: ${error.message}\n`);
    if (error.hint !== undefined) process.stderr.write(`  fix: ${error.hint}\n`);
    return error.exitStatus;
  }
  const text = error instanceof Error ? (process.env['EBP_DEBUG'] === undefined ? error.message : String(error.stack)) : String(error);
  process.stderr.write(`ebp: internal error: ${text}\n`);
  return 1;
}
