import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parseArgs } from '../../src/cli/args.js';
import { exitsAtOnce } from '../../src/cli/main.js';
import { EbpError } from '../../src/lib/errors.js';

const specs = {
  net: { type: 'boolean', description: '' },
  memory: { type: 'string', description: '' },
  share: { type: 'string', description: '', multiple: true },
} as const;

test('global options are accepted anywhere before the command line', () => {
  const parsed = parseArgs(['--json', '--memory', '1G', '--state-dir=/x', '--net'], specs);
  assert.equal(parsed.values['json'], true);
  assert.equal(parsed.values['memory'], '1G');
  assert.equal(parsed.values['state-dir'], '/x');
  assert.equal(parsed.values['net'], true);
});

test('everything after -- or the first operand is the command, options included', () => {
  const a = parseArgs(['--net', '--', 'ls', '--all', '-l'], specs, { stopAtOperand: true });
  assert.deepEqual(a.operands, ['ls', '--all', '-l']);
  const b = parseArgs(['--net', 'bash', '-c', '--memory'], specs, { stopAtOperand: true });
  assert.deepEqual(b.operands, ['bash', '-c', '--memory']);
  assert.equal(b.values['memory'], undefined);
});

test('repeatable options collect every value', () => {
  assert.deepEqual(parseArgs(['--share', 'a', '--share=b:ro'], specs).values['share'], ['a', 'b:ro']);
});

test('unknown options, missing values and values on flags are usage errors', () => {
  for (const argv of [['--nope'], ['--memory'], ['--net=yes'], ['-x']]) {
    assert.throws(() => parseArgs(argv, specs), (error: unknown) => error instanceof EbpError && error.code === 'USAGE', argv.join(' '));
  }
});

test('`ebp --version` prints the package\'s version and exits 0; `ebp --help` lists it', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const { version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };
  const printed = spawnSync(process.execPath, [`${root}bin/ebp`, '--version'], { encoding: 'utf8' });
  assert.equal(printed.status, 0, printed.stderr);
  assert.equal(printed.stdout, `ebp ${version}\n`);
  const help = spawnSync(process.execPath, [`${root}bin/ebp`, '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, /--version/);
});

test('a copy of ebp that is not built says so and how to build it, and exits 1', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const copy = mkdtempSync(join(tmpdir(), 'ebp-unbuilt-'));
  try {
    mkdirSync(join(copy, 'bin'));
    for (const name of ['ebp', 'package.json']) copyFileSync(join(root, 'bin', name), join(copy, 'bin', name));
    const run = spawnSync(process.execPath, [join(copy, 'bin', 'ebp'), '--help'], { encoding: 'utf8' });
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^ebp: this copy of ebp is not built\n {2}fix: run `npm run build`/);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});

test('one-shot commands (sandbox, run) exit as soon as they return; the others let Node end', () => {
  assert.equal(exitsAtOnce(['--state-dir', 'x', 'run', 'peer', 'app', 'up']), true);
  assert.equal(exitsAtOnce(['sandbox', '--', 'true']), true);
  assert.equal(exitsAtOnce(['up']), false);
  assert.equal(exitsAtOnce(['apps', 'run']), false);
});
