// dial.ts as the lean bundle of `ebp run` (dist/ebp-run.cjs) has it: that bundle leaves the SSH
// library out (most of the whole CLI's bundle, milliseconds of every start), and a run that
// dials the peer itself (no local daemon, or files to share) loads dist/ebp-dial.cjs, the bundle
// of dial.ts, next to it, the way bin/ebp starts a bundle (cli/code-cache.ts).
//
// That bundle has its own copies of the modules both hold. The one whose identity matters is
// EbpError: main.ts and run.ts tell a user's error from an internal one with instanceof, so an
// EbpError of the other bundle is made one of this bundle's as it crosses (same code, message
// and hint; the original is its cause). Everything else crosses as plain data, streams and
// functions.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EbpError, type ErrorCode } from '../lib/errors.js';
import { loadBundle } from './code-cache.js';
import type * as Dial from './dial.js';

export const DIAL_BUNDLE = 'ebp-dial.cjs';

let dialBundle: typeof Dial | undefined;

function dial(): typeof Dial {
  if (dialBundle === undefined) {
    // import.meta.url is this bundle's own file (scripts/bundle.mjs).
    const file = join(dirname(fileURLToPath(import.meta.url)), DIAL_BUNDLE);
    const loaded = loadBundle(file);
    if (loaded === undefined) {
      throw new EbpError('INTERNAL', `this copy of ebp is missing ${file}`, { hint: 'run `npm run build` in its folder' });
    }
    dialBundle = loaded as typeof Dial;
  }
  return dialBundle;
}

/** The other bundle's EbpError as this bundle's; anything else as it is. */
export function adopted(error: unknown): unknown {
  if (error instanceof EbpError || !(error instanceof Error) || error.name !== 'EbpError') return error;
  const { code, hint } = error as Error & { code: ErrorCode; hint?: unknown };
  return new EbpError(code, error.message, { cause: error, ...(typeof hint === 'string' ? { hint } : {}) });
}

async function across<T>(call: (bundle: typeof Dial) => Promise<T>): Promise<T> {
  try {
    return await call(dial());
  } catch (error) {
    throw adopted(error);
  }
}

export const launchDirect: typeof Dial.launchDirect = async (paths, spec, display) => across((bundle) => bundle.launchDirect(paths, spec, display));

export const queryDirect: typeof Dial.queryDirect = async (paths, peer, query) => across((bundle) => bundle.queryDirect(paths, peer, query));

export const launchWithFiles: typeof Dial.launchWithFiles = async (paths, spec) => across((bundle) => bundle.launchWithFiles(paths, spec));
