// The shape of a CLI command: its help text, its options, and a run function that calls the
// service layer. Commands never hold logic that SSH or HTTP entry points would need too.
import { type OptionSpecs, type ParsedArgs, formatOptions, GLOBAL_OPTIONS } from './args.js';
import { statePaths, type StatePaths } from '../config/paths.js';
import { stringOption } from './args.js';

export interface CommandContext {
  readonly args: ParsedArgs;
  readonly json: boolean;
  readonly paths: StatePaths;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly description: string;
  readonly options: OptionSpecs;
  /** Operands start a command line: options after the first operand belong to it. */
  readonly stopAtOperand?: boolean;
  /** Resolves to the exit status. */
  run(context: CommandContext): Promise<number>;
}

export function commandHelp(command: Command): string {
  return [
    `Usage: ${command.usage}`,
    '',
    command.description.trim(),
    '',
    'Options:',
    formatOptions({ ...command.options, ...GLOBAL_OPTIONS }),
    '',
  ].join('\n');
}

export function contextFor(args: ParsedArgs): CommandContext {
  return {
    args,
    json: args.values['json'] === true,
    paths: statePaths({ stateDir: stringOption(args, 'state-dir') }),
    // Node makes these streams on first use (part of a millisecond each): a command that
    // writes nothing (a launch whose output the local daemon writes itself) never does.
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
  };
}
