// The `ebp` command line: finds the command, parses its options, runs it, maps errors to exit
// statuses. Commands are thin; the work happens in the domain folders.
import { EbpError } from '../lib/errors.js';
import { GLOBAL_OPTIONS, formatOptions, parseArgs } from './args.js';
import { commandHelp, contextFor, type Command } from './command.js';
import { doctorCommand } from './commands/doctor.js';
import { sandboxCommand } from './commands/sandbox.js';
import { setupCommand } from './commands/setup.js';

const COMMANDS: readonly Command[] = [sandboxCommand, doctorCommand, setupCommand];

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
    '',
    'Run `ebp COMMAND --help` for a command\'s options.',
    '',
  ].join('\n');
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

export async function main(argv: readonly string[]): Promise<number> {
  try {
    const { name, rest } = findCommand(argv);
    if (name === undefined || name === 'help') {
      const topic = name === 'help' ? COMMANDS.find((command) => command.name === rest[0]) : undefined;
      process.stdout.write(topic === undefined ? topHelp() : commandHelp(topic));
      if (name === undefined && !rest.includes('--help') && !rest.includes('-h')) return 2;
      return 0;
    }
    const command = COMMANDS.find((candidate) => candidate.name === name);
    if (command === undefined) {
      throw new EbpError('USAGE', `unknown command "${name}"`, { hint: `commands: ${COMMANDS.map((c) => c.name).join(', ')}; see ebp --help` });
    }
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
