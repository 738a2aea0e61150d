// A small, strict argument parser: global options anywhere before `--`, per-command options,
// and for commands that run a program, everything from the first operand on kept verbatim.
import { EbpError } from '../lib/errors.js';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly description: string;
  /** Placeholder shown in help, e.g. SIZE. */
  readonly value?: string;
  readonly multiple?: boolean;
  readonly short?: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

export type OptionValue = string | boolean | string[];

export interface ParsedArgs {
  readonly values: Readonly<Record<string, OptionValue | undefined>>;
  readonly operands: readonly string[];
}

export const GLOBAL_OPTIONS: OptionSpecs = {
  'state-dir': { type: 'string', value: 'DIR', description: 'where ebp keeps its state (also EBP_STATE_DIR)' },
  json: { type: 'boolean', description: 'print data as JSON' },
  help: { type: 'boolean', short: 'h', description: 'show help for this command' },
};

export interface ParseOptions {
  /** The first operand and everything after it are operands, options included (a command line). */
  readonly stopAtOperand?: boolean;
}

export function parseArgs(argv: readonly string[], specs: OptionSpecs, options: ParseOptions = {}): ParsedArgs {
  const all: OptionSpecs = { ...GLOBAL_OPTIONS, ...specs };
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(all)) if (spec.short !== undefined) byShort.set(spec.short, name);
  const values: Record<string, OptionValue | undefined> = {};
  const operands: string[] = [];

  const set = (name: string, value: string | boolean): void => {
    const spec = all[name];
    if (spec?.multiple === true) {
      const list = values[name];
      values[name] = [...(Array.isArray(list) ? list : []), String(value)];
    } else {
      values[name] = value;
    }
  };

  for (let index = 0; index < argv.length; index += 1) {
    const token = argv[index] ?? '';
    if (token === '--') {
      operands.push(...argv.slice(index + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      name = eq === -1 ? token.slice(2) : token.slice(2, eq);
      inline = eq === -1 ? undefined : token.slice(eq + 1);
    } else if (/^-[A-Za-z]$/.test(token)) {
      name = byShort.get(token.slice(1));
      if (name === undefined) throw unknownOption(token, all);
    } else {
      if (options.stopAtOperand === true) {
        operands.push(...argv.slice(index));
        break;
      }
      operands.push(token);
      continue;
    }
    const spec = all[name];
    if (spec === undefined) throw unknownOption(token, all);
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new EbpError('USAGE', `option --${name} takes no value (got "${inline}")`);
      set(name, true);
      continue;
    }
    const value = inline ?? argv[index + 1];
    if (value === undefined) throw new EbpError('USAGE', `option --${name} needs a value (${spec.value ?? 'VALUE'})`);
    if (inline === undefined) index += 1;
    set(name, value);
  }
  return { values, operands };
}

function unknownOption(token: string, specs: OptionSpecs): EbpError {
  const known = Object.keys(specs).map((name) => `--${name}`).join(', ');
  return new EbpError('USAGE', `unknown option "${token}"`, { hint: `known options: ${known}` });
}

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name];
  return typeof value === 'string' ? value : undefined;
}

export function listOption(args: ParsedArgs, name: string): string[] {
  const value = args.values[name];
  return Array.isArray(value) ? value : [];
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

export function integerOption(args: ParsedArgs, name: string, range: { min: number; max: number }): number | undefined {
  const text = stringOption(args, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < range.min || value > range.max) {
    throw new EbpError('USAGE', `--${name} must be a whole number from ${range.min} to ${range.max} (got "${text}")`);
  }
  return value;
}

export function numberOption(args: ParsedArgs, name: string, range: { min: number; max: number }): number | undefined {
  const text = stringOption(args, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || value < range.min || value > range.max) {
    throw new EbpError('USAGE', `--${name} must be a number from ${range.min} to ${range.max} (got "${text}")`);
  }
  return value;
}

export function formatOptions(specs: OptionSpecs): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const short = spec.short === undefined ? '    ' : `-${spec.short}, `;
    const left = `${short}--${name}${spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''}`;
    return [left, spec.description + (spec.multiple === true ? ' (repeatable)' : '')] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, text]) => `  ${left.padEnd(width)}${text}`).join('\n');
}
