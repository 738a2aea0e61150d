// Starts the bundled CLI (dist/ebp.cjs: every module in one file) with V8's code cache, the way
// Node's own CommonJS loader would run it, minus the compiling: a short-lived command spends a
// good part of its life compiling JavaScript (ssh2 alone takes tens of ms in a fresh process).
//
// The cache is kept per user and per command under $XDG_CACHE_HOME/ebp (default ~/.cache/ebp),
// in a folder that must be the user's own and closed to others: V8 trusts what it reads there.
// A command writes its cache when there is none (or V8 rejected it: another Node, another
// bundle) and the command succeeded, so the cache holds what a working run compiled.
import { closeSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { planEarlyRun, startEarlyRun } from './early-run.js';

type ModuleFunction = (exports: object, require: (id: string) => unknown, module: { exports: object }, filename: string, dirname: string) => void;

/**
 * How the bundle was started: not at all (missing, older than the modules, or a command that
 * needs the modules), with(out) a cache, or not yet: the command went ahead without it and
 * starts it only if it turns out to need it (`early`: cli/early-run.ts).
 */
export type BundleStart = 'missing' | 'stale' | 'modules' | 'cached' | 'compiled' | 'rejected' | 'no-cache' | 'early';

/**
 * Commands that run from the modules: `demo` imports the test harness (ES modules) at run time,
 * and code compiled here cannot import() (Node 20 allows that only behind an experimental flag),
 * so the bundle has every import() turned into require() (scripts/bundle.mjs).
 */
const FROM_MODULES = new Set(['demo']);

/**
 * Commands with a bundle of their own next to the whole CLI's (scripts/bundle.mjs): what they
 * load and nothing else. A one-shot sandbox should not read, decode and deserialize the SSH
 * library and the daemon (a sixth of the bundle is its own, about 5 ms of every start); nor
 * should a launch through the local daemon (`run`: its bundle loads the SSH part, a bundle of
 * its own, only when it dials a peer itself: cli/dial-apart.ts).
 */
const OWN_BUNDLES: ReadonlyMap<string, string> = new Map([['sandbox', 'ebp-sandbox.cjs'], ['run', 'ebp-run.cjs']]);

/**
 * Runs the bundle if there is one and it is at least as new as `newest` (the compiled modules it
 * was made from); 'missing' and 'stale' mean: load the modules instead. A command with a bundle
 * of its own (OWN_BUNDLES, in the same folder) runs that one when it is there and fresh.
 */
export function runBundle(bundle: string, newest: string, argv: readonly string[]): BundleStart {
  const command = commandOf(argv);
  if (FROM_MODULES.has(command)) return 'modules';
  const own = OWN_BUNDLES.get(command);
  if (own !== undefined) {
    const ownBundle = join(dirname(bundle), own);
    // A plain launch goes ahead without the run bundle, which is only checked for here: it is
    // read and started if the run command is needed after all (cli/early-run.ts).
    const early = command === 'run' ? planEarlyRun(argv) : undefined;
    if (early !== undefined && freshness(ownBundle, newest) === 'fresh' && startEarlyRun(early, () => { startLate(ownBundle, command); })) return 'early';
    const { started } = startBundle(ownBundle, newest, command);
    if (started !== 'missing' && started !== 'stale') return started;
  }
  return startBundle(bundle, newest, command).started;
}

function freshness(bundle: string, newest: string): 'fresh' | 'stale' | 'missing' {
  try {
    return statSync(bundle).mtimeMs < statSync(newest).mtimeMs ? 'stale' : 'fresh';
  } catch {
    return 'missing';
  }
}

/**
 * Starts a bundle found fresh a moment ago. That it is gone now is an error, not a fallback: the
 * launch is out, and only that bundle's command can take it over. (A build replacing it?)
 */
function startLate(bundle: string, command: string): void {
  if (startBundle(bundle, undefined, command).started !== 'missing') return;
  process.stderr.write(`ebp: ${bundle} went away while ebp was starting (is a build running?)\n  fix: run the command again once the build is done\n`);
  // The exit closes the connection: the daemon ends the launch.
  process.exit(125);
}

/**
 * Runs a bundle that is a library (cli/dial-apart.ts loads one) and returns its exports, or
 * undefined when it is missing. Its code cache is kept like a command's bundle's, under the
 * command that loads it. Not checked against the modules: it comes from the same build as the
 * bundle that loads it, which was.
 */
export function loadBundle(bundle: string): unknown {
  const { started, exports } = startBundle(bundle, undefined, commandOf(process.argv.slice(2)));
  return started === 'missing' ? undefined : exports;
}

/** `newest`: the bundle is 'stale' when older than that file; undefined: not checked. */
function startBundle(bundle: string, newest: string | undefined, command: string): { started: BundleStart; exports?: unknown } {
  let source: string;
  // Cache files: NAME-NODE_VERSION-SIZE-MTIME-COMMAND.bin, NAME the bundle's file name.
  const bundleName = basename(bundle, '.cjs');
  let bundleKey: string;
  try {
    const fd = openSync(bundle, 'r');
    try {
      const stats = fstatSync(fd);
      if (newest !== undefined && stats.mtimeMs < statSync(newest).mtimeMs) return { started: 'stale' };
      bundleKey = `${bundleName}-${process.version}-${stats.size.toString(36)}-${Math.floor(stats.mtimeMs).toString(36)}`;
      // The bundle is ASCII (scripts/bundle.mjs): read as one-byte text, no UTF-8 decoding.
      source = readFileSync(fd, 'latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return { started: 'missing' };
  }
  const folder = cacheFolder();
  const file = folder === undefined ? undefined : join(folder, `${bundleKey}-${command}.bin`);
  let cached: Buffer | undefined;
  if (file !== undefined) {
    try {
      cached = readFileSync(file);
    } catch {
      cached = undefined;
    }
  }
  const script = new Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, {
    filename: bundle,
    ...(cached === undefined ? {} : { cachedData: cached }),
  });
  if (folder !== undefined && file !== undefined && (cached === undefined || script.cachedDataRejected === true)) {
    process.once('exit', (code) => {
      if (code === 0) saveCache(folder, file, bundleName, bundleKey, script);
    });
  }
  const run = script.runInThisContext() as ModuleFunction;
  const module = { exports: {} };
  run.call(module.exports, module.exports, bundleRequire(bundle), module, bundle, dirname(bundle));
  const started = file === undefined ? 'no-cache' : cached === undefined ? 'compiled' : script.cachedDataRejected === true ? 'rejected' : 'cached';
  return { started, exports: module.exports };
}

/**
 * The bundle's require(). What the bundle leaves outside is mostly Node's own modules, which
 * process.getBuiltinModule() hands out without a module loader; a real require() (node:module's
 * createRequire, itself a fifth of a millisecond to load) is made only for the rest: koffi, the
 * native bindings next to the bundle.
 */
function bundleRequire(bundle: string): (id: string) => unknown {
  let outside: NodeJS.Require | undefined;
  return (id: string): unknown => process.getBuiltinModule(id) ?? (outside ??= process.getBuiltinModule('node:module').createRequire(bundle))(id);
}

/** The command's name as a file-name part: the first word that is not an option. */
function commandOf(argv: readonly string[]): string {
  for (let index = 0; index < argv.length; index += 1) {
    const word = argv[index] ?? '';
    if (word === '--') break;
    if (word === '--state-dir') index += 1;
    else if (!word.startsWith('-')) return /^[a-z]{1,16}$/.test(word) ? word : 'other';
  }
  return 'none';
}

/** The cache folder if it is (or can be made) this user's own, closed to others; else none. */
function cacheFolder(): string | undefined {
  try {
    // os.homedir() is $HOME when set: node:os is loaded (a fifth of a millisecond) only without it.
    const base = process.env['XDG_CACHE_HOME'] ?? join(process.env['HOME'] ?? process.getBuiltinModule('node:os').homedir(), '.cache');
    const folder = join(base, 'ebp', 'code');
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const stats = lstatSync(folder);
    const uid = process.getuid?.() ?? -1;
    if (!stats.isDirectory() || stats.uid !== uid || (stats.mode & 0o077) !== 0) return undefined;
    return folder;
  } catch {
    return undefined;
  }
}

/** Writes the cache (atomically: concurrent runs may race) and drops those of older bundles. */
function saveCache(folder: string, file: string, bundleName: string, bundleKey: string, script: Script): void {
  try {
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, script.createCachedData(), { mode: 0o600 });
    renameSync(temporary, file);
    // The caches of older builds of this bundle, and files named the older way (no bundle name).
    for (const name of readdirSync(folder)) {
      const older = name.startsWith(`${bundleName}-v`) && !name.startsWith(`${bundleKey}-`);
      if (older || /^v\d/.test(name)) rmSync(join(folder, name), { force: true });
    }
  } catch {
    // A cache that cannot be written only costs the next run its compile time.
  }
}
