// The bundled CLI's loader (cli/code-cache.ts), each case in a fresh Node process as bin/ebp runs
// it: a bundle older than the modules or missing is not used; a successful run leaves its code
// cache (private folder, private file) and the next run uses it; a failed run leaves none; a
// folder open to others is not trusted; a corrupt cache is rejected by V8 and replaced; a new
// bundle's cache replaces the old one's.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';

const LOADER = new URL('../../src/cli/code-cache.js', import.meta.url).href;
const work = mkdtempSync(join(tmpdir(), 'ebp-code-cache-'));
after(() => { rmSync(work, { recursive: true, force: true }); });

let cases = 0;

interface Setup {
  readonly bundle: string;
  readonly newest: string;
  readonly cacheHome: string;
  readonly folder: string;
}

/** A bundle that prints its arguments, sets its exit status from them, and uses a module left outside it. */
function setup(): Setup {
  cases += 1;
  const dir = join(work, `case${cases}`);
  mkdirSync(dir);
  const bundle = join(dir, 'ebp.cjs');
  const newest = join(dir, 'main.js');
  writeFileSync(newest, '');
  writeFileSync(bundle, [
    'const { basename } = require("node:path");',
    'function greet(words) { return words.map((word) => word.toUpperCase()).join(" "); }',
    'process.stdout.write(`ran ${greet(process.argv.slice(2))} from ${basename(__filename)}\\n`);',
    'const { tmpdir } = require("node:os");',
    'process.stdout.write(`require ${typeof tmpdir}\\n`);',
    'if (process.argv.includes("fail")) process.exitCode = 3;',
  ].join('\n'));
  // The bundle is newer than the modules it was made from.
  utimesSync(newest, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  const cacheHome = join(dir, 'cache');
  return { bundle, newest, cacheHome, folder: join(cacheHome, 'ebp', 'code') };
}

function start(setupDone: Setup, args: readonly string[]): { started: string; stdout: string; status: number | null } {
  // process.argv is [node, 'ebp', ...args], as for bin/ebp.
  const script = `import { runBundle } from ${JSON.stringify(LOADER)};
process.stderr.write(runBundle(${JSON.stringify(setupDone.bundle)}, ${JSON.stringify(setupDone.newest)}, process.argv.slice(2)));`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', 'ebp', ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CACHE_HOME: setupDone.cacheHome },
    timeout: 20_000,
  });
  return { started: result.stderr, stdout: result.stdout, status: result.status };
}

test('a missing bundle, or one older than the modules, is not used; demo runs from the modules', () => {
  const s = setup();
  rmSync(s.bundle);
  assert.equal(start(s, ['x']).started, 'missing');
  const t = setup();
  utimesSync(t.newest, new Date(), new Date(Date.now() + 60_000));
  const run = start(t, ['x']);
  assert.equal(run.started, 'stale');
  assert.equal(run.stdout, '', 'the stale bundle did not run');
  const demo = start(setup(), ['--json', 'demo', '3']);
  assert.equal(demo.started, 'modules');
  assert.equal(demo.stdout, '');
});

test('a successful run leaves a private cache; the next run of that command uses it', () => {
  const s = setup();
  const first = start(s, ['run', 'a']);
  assert.equal(first.started, 'compiled');
  assert.equal(first.stdout, 'ran RUN A from ebp.cjs\nrequire function\n', 'the bundle ran, its require() worked');
  assert.equal(first.status, 0);
  const files = readdirSync(s.folder);
  assert.equal(files.length, 1);
  assert.match(files[0] ?? '', /-run\.bin$/);
  assert.equal(statSync(s.folder).mode & 0o777, 0o700);
  assert.equal(statSync(join(s.folder, files[0] ?? '')).mode & 0o777, 0o600);

  const second = start(s, ['run', 'b']);
  assert.equal(second.started, 'cached');
  assert.equal(second.stdout, 'ran RUN B from ebp.cjs\nrequire function\n');
  // Another command has a cache of its own.
  assert.equal(start(s, ['--state-dir', 'run', 'apps']).started, 'compiled');
  assert.deepEqual(readdirSync(s.folder).map((name) => name.replace(/^.*-/, '')).sort(), ['apps.bin', 'run.bin']);
});

test('a failed run leaves no cache', () => {
  const s = setup();
  const run = start(s, ['run', 'fail']);
  assert.equal(run.status, 3);
  assert.deepEqual(readdirSync(s.folder), []);
  assert.equal(start(s, ['run']).started, 'compiled');
});

test('a cache folder that others can write to is not used', () => {
  const s = setup();
  mkdirSync(s.folder, { recursive: true });
  chmodSync(s.folder, 0o777);
  const run = start(s, ['run']);
  assert.equal(run.started, 'no-cache');
  assert.equal(run.stdout, 'ran RUN from ebp.cjs\nrequire function\n', 'the command still runs');
  assert.deepEqual(readdirSync(s.folder), []);
});

test('a corrupt cache is rejected and replaced; a new bundle drops the old bundle\'s caches', () => {
  const s = setup();
  assert.equal(start(s, ['run']).started, 'compiled');
  const [name] = readdirSync(s.folder);
  assert.ok(name !== undefined);
  writeFileSync(join(s.folder, name), Buffer.alloc(4096, 7));
  assert.equal(start(s, ['run']).started, 'rejected');
  assert.equal(start(s, ['run']).started, 'cached', 'replaced after the rejection');

  writeFileSync(s.bundle, 'process.stdout.write("new\\n");\n');
  const run = start(s, ['run']);
  assert.equal(run.started, 'compiled');
  assert.equal(run.stdout, 'new\n');
  const files = readdirSync(s.folder);
  assert.equal(files.length, 1, `only the new bundle's cache is left: ${files.join(', ')}`);
  assert.notEqual(files[0], name);
});

test('a command with a bundle of its own runs that one while it is fresh; the two keep their own caches', () => {
  const s = setup();
  const own = join(dirname(s.bundle), 'ebp-sandbox.cjs');
  writeFileSync(own, 'process.stdout.write(`sandbox bundle ${process.argv.slice(2).join(" ")}\\n`);\n');
  const sandbox = start(s, ['--state-dir', 'x', 'sandbox', '--', 'true']);
  assert.deepEqual([sandbox.started, sandbox.stdout], ['compiled', 'sandbox bundle --state-dir x sandbox -- true\n']);
  assert.equal(start(s, ['sandbox', 'true']).started, 'cached');
  // Other commands run the whole CLI's bundle; neither bundle's cache removes the other's.
  assert.equal(start(s, ['run']).stdout, 'ran RUN from ebp.cjs\nrequire function\n');
  assert.deepEqual(readdirSync(s.folder).map((name) => name.replace(/-v\d.*-/, '-')).sort(), ['ebp-run.bin', 'ebp-sandbox-sandbox.bin']);
  assert.equal(start(s, ['sandbox', 'true']).started, 'cached');

  // Older than the modules (the build stopped half-way): the whole bundle runs the command.
  utimesSync(own, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
  const stale = start(s, ['sandbox', 'true']);
  assert.equal(stale.stdout, 'ran SANDBOX TRUE from ebp.cjs\nrequire function\n');
  rmSync(own);
  assert.equal(start(s, ['sandbox']).stdout, 'ran SANDBOX from ebp.cjs\nrequire function\n');
});

test('cache files named before bundles had names are removed', () => {
  const s = setup();
  mkdirSync(s.folder, { recursive: true, mode: 0o700 });
  writeFileSync(join(s.folder, 'v20.0.0-abc-def-run.bin'), 'old');
  assert.equal(start(s, ['run']).started, 'compiled');
  assert.deepEqual(readdirSync(s.folder).map((name) => name.replace(/-v\d.*-/, '-')), ['ebp-run.bin']);
});

test('a library bundle is run once and its exports returned (its require() loads files next to it), with a cache kept under the command; a missing one is undefined', () => {
  const s = setup();
  const library = join(dirname(s.bundle), 'ebp-lib.cjs');
  // A module of its own next to it, as the native bindings are: loaded by a real require().
  writeFileSync(join(dirname(s.bundle), 'twice.cjs'), 'module.exports = (word) => `${word} ${word}`;\n');
  writeFileSync(library, 'process.stdout.write("loaded\\n");\nexports.twice = require("./twice.cjs");\n');
  const script = `import { loadBundle } from ${JSON.stringify(LOADER)};
const lib = loadBundle(${JSON.stringify(library)});
process.stdout.write(lib.twice('ok') + '\\n');
process.stdout.write(String(loadBundle(${JSON.stringify(join(dirname(s.bundle), 'none.cjs'))})) + '\\n');`;
  const load = (): string => spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', 'ebp', '--state-dir', 'x', 'run', 'peer', 'app'], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CACHE_HOME: s.cacheHome },
    timeout: 20_000,
  }).stdout;
  assert.equal(load(), 'loaded\nok ok\nundefined\n');
  assert.deepEqual(readdirSync(s.folder).map((name) => name.replace(/-v\d.*-/, '-')), ['ebp-lib-run.bin']);
  assert.equal(load(), 'loaded\nok ok\nundefined\n', 'runs from its cache');
});
