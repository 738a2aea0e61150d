// Reading the configuration file: TOML text → validated Config (see schema.ts for the shape).
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { EbpError, errnoCode } from '../lib/errors.js';
import { DEFAULT_CONFIG, validateConfig, type Config } from './schema.js';

export type { AppSettings, ApprovalPolicy, Config, ExtraAppConfig } from './schema.js';
export { appSettings, DEFAULT_CONFIG } from './schema.js';

export const CONFIG_FILE = 'config.toml';
/** A config file larger than this is a mistake, not a configuration. */
const MAX_CONFIG_BYTES = 1024 * 1024;

export function defaultConfigFile(configDir: string): string {
  return join(configDir, CONFIG_FILE);
}

/** Parses and validates config text; `fileName` is only used in messages. */
export function parseConfig(text: string, fileName: string): Config {
  let document: unknown;
  try {
    document = parse(text.replace(/^\uFEFF/, ''), { integersAsBigInt: true, maxDepth: 32 });
  } catch (error) {
    if (error instanceof TomlError) {
      const [first = 'invalid TOML'] = error.message.split('\n');
      const reason = first.replace(/^Invalid TOML document:\s*/, '');
      throw new EbpError('CONFIG_INVALID', `${fileName}:${error.line}:${error.column}: invalid TOML: ${reason}`, {
        cause: error,
        hint: `fix the syntax at line ${error.line} of ${fileName}`,
      });
    }
    throw error;
  }
  return validateConfig(document, fileName);
}

/**
 * Loads and validates a config file. No file given, or a missing file, gives the defaults, unless
 * `required` (then a missing file is a CONFIG_INVALID error).
 */
export async function loadConfig(file: string | undefined, options: { required?: boolean } = {}): Promise<Config> {
  if (file === undefined) return DEFAULT_CONFIG;
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw new EbpError('CONFIG_INVALID', `config file ${file} is not a regular file`);
      if (stats.size > MAX_CONFIG_BYTES) {
        throw new EbpError('CONFIG_INVALID', `config file ${file} is too large (${stats.size} bytes; at most ${MAX_CONFIG_BYTES})`);
      }
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof EbpError) throw error;
    if (errnoCode(error) === 'ENOENT' && options.required !== true) return DEFAULT_CONFIG;
    const reason = errnoCode(error) === 'ENOENT' ? 'does not exist' : `cannot be read (${error instanceof Error ? error.message : String(error)})`;
    throw new EbpError('CONFIG_INVALID', `config file ${file} ${reason}`, {
      cause: error,
      ...(errnoCode(error) === 'ENOENT' ? { hint: 'check the path, or leave it out to use the default configuration' } : {}),
    });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new EbpError('CONFIG_INVALID', `config file ${file} is not UTF-8 text`, { cause: error });
  }
  return parseConfig(text, file);
}
