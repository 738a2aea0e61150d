// Bundles the compiled CLI (dist/src/cli/bundle-entry.js) into dist/ebp.cjs, one file that
// bin/ebp starts with V8's code cache. The native parts stay files: koffi is loaded from
// node_modules; ssh2's crypto binding (and cpu-features') are copied next to the bundle.
import { build } from 'esbuild';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * ssh2 fills each packet's padding (4 to 19 bytes) with its own crypto.randomFillSync call, about
 * 1.5 µs each: a measurable part of every keystroke, X11 round trip and bulk packet. The bundle
 * takes the padding from a pool of CSPRNG bytes instead (refilled by randomFillSync; each byte is
 * used once). Only the call sites are rewritten; if ssh2 changes them, the build says so and
 * keeps ssh2's own calls.
 */
const PADDING_CALL = 'randomFillSync(packet, 5 + payloadLen, padLen);';
const paddingPool = {
  name: 'ssh2-padding-pool',
  setup(build) {
    build.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]protocol[\\/]crypto\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const calls = source.split(PADDING_CALL).length - 1;
      if (calls === 0) {
        return { contents: source, loader: 'js', warnings: [{ text: 'ssh2\'s padding calls were not found: the padding pool is not used' }] };
      }
      const pool = [
        '',
        'const PADDING_POOL = Buffer.allocUnsafe(16384);',
        'let paddingLeft = 0;',
        'function fillPadding(packet, offset, length) {',
        '  if (length > paddingLeft) { randomFillSync(PADDING_POOL); paddingLeft = PADDING_POOL.length; }',
        '  paddingLeft -= length;',
        '  PADDING_POOL.copy(packet, offset, paddingLeft, paddingLeft + length);',
        '}',
        '',
      ].join('\n');
      return { contents: source.split(PADDING_CALL).join('fillPadding(packet, 5 + payloadLen, padLen);') + pool, loader: 'js' };
    });
  },
};
/**
 * ssh2 tells its server's session objects from channels by their class name when a connection
 * drops (lib/utils.js, onCHANNEL_CLOSE): minified, the class has another name, and a session
 * that has no command yet (a client's session opened ahead, or any client that opens one and
 * goes away) was taken for a channel: the daemon died on a TypeError. Only those session objects
 * have `_chanInfo` (lib/server.js): the check looks at that instead. The build fails if ssh2's
 * code is not the one this repairs.
 */
const SESSION_CHECK = "channel.server && channel.constructor.name === 'Session'";
const minifiedSessions = {
  name: 'ssh2-minified-sessions',
  setup(build) {
    build.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]utils\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (source.split(SESSION_CHECK).length !== 2) throw new Error(`ssh2's session check (${SESSION_CHECK}) is not in ${args.path}: see scripts/bundle.mjs`);
      return { contents: source.replace(SESSION_CHECK, 'channel.server && channel._chanInfo !== undefined'), loader: 'js' };
    });
  },
};

/** What both outputs are: one CommonJS file for Node 20 with everything it imports inside. */
const commonJs = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning' };

/**
 * Builds, then puts each output file in place by rename. A running daemon has the native
 * bindings copied next to the bundle mapped in memory: writing over them in place (what esbuild
 * does) crashes it (SIGSEGV) at its next call into them. A rename leaves the old file to the
 * processes that have it open.
 */
async function buildInPlace(options) {
  const { outputFiles } = await build({ ...options, write: false });
  for (const file of outputFiles) {
    const temporary = `${file.path}.${process.pid}.tmp`;
    await mkdir(dirname(file.path), { recursive: true });
    try {
      await writeFile(temporary, file.contents);
      await rename(temporary, file.path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }
}

/** The CLI's bundles: bin/ebp starts them through code-cache.js. */
const cliBundle = {
  ...commonJs,
  entryPoints: [join(root, 'dist', 'src', 'cli', 'bundle-entry.js')],
  external: ['koffi'],
  loader: { '.node': 'copy' },
  // Code compiled through node:vm cannot import() in Node 20: what the bundle leaves outside
  // (Node's own modules, koffi) is loaded with require().
  supported: { 'dynamic-import': false },
  minify: true,
  charset: 'ascii',
  // import.meta.url is the bundle's own file (lib/package-root.ts looks up from there).
  define: { 'import.meta.url': '__ebpBundleUrl' },
  banner: { js: 'var __ebpBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
};

await buildInPlace({ ...cliBundle, outfile: join(root, 'dist', 'ebp.cjs'), plugins: [paddingPool, minifiedSessions] });

/**
 * `ebp sandbox` and `ebp run` have a bundle of their own each (cli/code-cache.ts picks it): the
 * command table with only that command behind it. Every other command module becomes a stub that
 * says it is not there, so that the bundle holds neither the SSH library nor the daemon.
 */
function onlyCommand(name, outfile) {
  const kept = `./commands/${name}.js`;
  return {
    name: `only-the-${name}-command`,
    setup(build) {
      build.onResolve({ filter: /^\.\/commands\/[a-z-]+\.js$/ }, (args) => (
        args.path === kept || !args.importer.endsWith(join('cli', 'main.js')) ? undefined : { path: args.path, namespace: 'not-in-this-bundle' }
      ));
      build.onLoad({ filter: /.*/, namespace: 'not-in-this-bundle' }, (args) => ({
        contents: `throw new Error(${JSON.stringify(`${args.path} is not in the ${name} command's bundle (dist/${outfile})`)});`,
        loader: 'js',
      }));
    },
  };
}

await buildInPlace({
  ...cliBundle,
  outfile: join(root, 'dist', 'ebp-sandbox.cjs'),
  plugins: [onlyCommand('sandbox', 'ebp-sandbox.cjs')],
});

/**
 * What `ebp run` does with the SSH library (cli/dial.ts: dialling the peer from this process when
 * no daemon runs, or to serve files) is a bundle of its own, loaded by the run command's bundle
 * when needed. Made before that bundle: a bundle newer than the modules means both are there.
 */
await buildInPlace({
  ...cliBundle,
  entryPoints: [join(root, 'dist', 'src', 'cli', 'dial.js')],
  outfile: join(root, 'dist', 'ebp-dial.cjs'),
  plugins: [paddingPool, minifiedSessions],
});

/** In the run command's bundle, cli/dial.js is cli/dial-apart.js: it loads dist/ebp-dial.cjs. */
const dialApart = {
  name: 'dial-apart',
  setup(build) {
    const dial = join(root, 'dist', 'src', 'cli', 'dial.js');
    build.onResolve({ filter: /(^|\/)dial\.js$/ }, (args) => (
      join(args.resolveDir, args.path) === dial ? { path: join(dirname(dial), 'dial-apart.js') } : undefined
    ));
  },
};

await buildInPlace({
  ...cliBundle,
  outfile: join(root, 'dist', 'ebp-run.cjs'),
  plugins: [onlyCommand('run', 'ebp-run.cjs'), dialApart],
});

// bin/ebp is CommonJS (an ES module entry costs every command the start of Node's ES module
// loader): it needs the code-cache starter as CommonJS too.
await buildInPlace({
  ...commonJs,
  entryPoints: [join(root, 'dist', 'src', 'cli', 'code-cache.js')],
  outfile: join(root, 'dist', 'ebp-start.cjs'),
});

/**
 * dist/bin/ebp, the `ebp` command (package.json's `bin`): bin/ebp for this machine, in two ways.
 * - Its first line names the node that ran this build: bin/ebp's `#!/usr/bin/env node` finds node
 *   on PATH, which costs every command an exec of env and a PATH search, about 1.4 ms. A node path
 *   the kernel cannot take as an interpreter line (blanks, too long) keeps env.
 * - The code-cache starter (dist/ebp-start.cjs) is inside it, not loaded with require(): Node's
 *   module loader finds, reads and wraps it in about 0.4 ms.
 * bin/ebp stays the portable entry (scripts and tests run it with node). Its folder has bin/ebp's
 * package.json, which makes it CommonJS.
 */
const launcher = (await readFile(join(root, 'bin', 'ebp'), 'utf8')).split('\n');
const starterCode = await readFile(join(root, 'dist', 'ebp-start.cjs'), 'utf8');
const ENV_LINE = '#!/usr/bin/env node';
const DIST_LINE = "const dist = join(__dirname, '..', 'dist');";
const START_LINE = "const started = existsSync(starter) ? require(starter).runBundle(join(dist, 'ebp.cjs'), modules, argv) : 'missing';";
if (launcher[0] !== ENV_LINE || [DIST_LINE, START_LINE].some((wanted) => launcher.filter((line) => line === wanted).length !== 1)) {
  throw new Error(`bin/ebp changed: expected "${ENV_LINE}" first, then once each "${DIST_LINE}" and "${START_LINE}" (scripts/bundle.mjs makes dist/bin/ebp from it)`);
}
const direct = /^\/[^\s]{1,200}$/.test(process.execPath);
launcher[0] = [
  direct ? `#!${process.execPath}` : ENV_LINE,
  '// Made by scripts/bundle.mjs from bin/ebp, with dist/ebp-start.cjs inside (see bin/ebp).',
].join('\n');
launcher[launcher.indexOf(DIST_LINE)] = [
  "const dist = join(__dirname, '..');",
  'const starterModule = { exports: {} };',
  `((module, exports) => {\n${starterCode}\n})(starterModule, starterModule.exports);`,
].join('\n');
launcher[launcher.indexOf(START_LINE)] = "const started = starterModule.exports.runBundle(join(dist, 'ebp.cjs'), modules, argv);";
const launcherDir = join(root, 'dist', 'bin');
await mkdir(launcherDir, { recursive: true });
await writeFile(join(launcherDir, 'package.json'), await readFile(join(root, 'bin', 'package.json')));
const temporaryLauncher = join(launcherDir, `ebp.${process.pid}.tmp`);
await writeFile(temporaryLauncher, launcher.join('\n'));
await chmod(temporaryLauncher, 0o755);
await rename(temporaryLauncher, join(launcherDir, 'ebp'));
