import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { readJsonFile, writeFileAtomic, writeFileAtomicSync } from '../../src/lib/atomic-file.js';
import { EbpError } from '../../src/lib/errors.js';
import { scratchPaths } from './helpers/scratch.js';

const nextPath = scratchPaths('ebp-atomic-');
function freshDir(): string {
  const dir = nextPath();
  mkdirSync(dir);
  return dir;
}

test('writes, replaces, applies the exact mode and leaves no temporary files', async () => {
  const dir = freshDir();
  const file = join(dir, 'state.json');
  await writeFileAtomic(file, 'one', { mode: 0o640 });
  assert.equal(readFileSync(file, 'utf8'), 'one');
  assert.equal(statSync(file).mode & 0o777, 0o640);
  await writeFileAtomic(file, Buffer.from('two'), { mode: 0o600 });
  assert.equal(readFileSync(file, 'utf8'), 'two');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  writeFileAtomicSync(file, 'three', { mode: 0o644 });
  assert.equal(readFileSync(file, 'utf8'), 'three');
  assert.equal(statSync(file).mode & 0o777, 0o644);
  assert.deepEqual(readdirSync(dir), ['state.json']);
});

test('a failed write leaves the old file whole and no temporary file behind', async () => {
  const dir = freshDir();
  const target = join(dir, 'target');
  mkdirSync(target);
  writeFileSync(join(target, 'inside'), 'x');
  await assert.rejects(writeFileAtomic(target, 'new'), /EISDIR|ENOTEMPTY|EEXIST/);
  assert.throws(() => {
    writeFileAtomicSync(target, 'new');
  }, /EISDIR|ENOTEMPTY|EEXIST/);
  assert.deepEqual(readdirSync(dir), ['target']);

  const file = join(dir, 'file');
  writeFileSync(file, 'old');
  await assert.rejects(writeFileAtomic(file, 'new', { exclusive: true }), /EEXIST/);
  assert.throws(() => {
    writeFileAtomicSync(file, 'new', { exclusive: true });
  }, /EEXIST/);
  assert.equal(readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(readdirSync(dir).sort(), ['file', 'target']);

  await assert.rejects(writeFileAtomic(join(dir, 'missing', 'x'), 'new'), /ENOENT/);
  await writeFileAtomic(join(dir, 'created'), 'new', { exclusive: true });
  assert.equal(readFileSync(join(dir, 'created'), 'utf8'), 'new');
});

test('a writer killed at any moment leaves either the old or the new content', async () => {
  const dir = freshDir();
  const target = join(dir, 'big');
  const size = 4 * 1024 * 1024;
  const moduleUrl = new URL('../../src/lib/atomic-file.js', import.meta.url).href;
  const script = `
    import { writeFileAtomicSync } from ${JSON.stringify(moduleUrl)};
    const a = Buffer.alloc(${size}, 'a'), b = Buffer.alloc(${size}, 'b');
    for (let i = 0; ; i++) writeFileAtomicSync(${JSON.stringify(target)}, i % 2 ? b : a);
  `;
  for (let round = 0; round < 4; round += 1) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    let done = false;
    const exited = new Promise((resolve) => child.once('exit', (code) => {
      done = true;
      resolve(code);
    }));
    while (!existsSync(target)) {
      assert.ok(!done, 'the writer died before writing');
      await sleep(5);
    }
    await sleep(10 + Math.random() * 60);
    child.kill('SIGKILL');
    await exited;
    const content = readFileSync(target);
    assert.equal(content.length, size);
    const first = content[0];
    assert.ok(first === 0x61 || first === 0x62);
    assert.ok(content.every((byte) => byte === first), 'the file is one complete version');
  }
});

test('readJsonFile: fallback when absent, value when valid, STATE_INVALID naming the file otherwise', async () => {
  const dir = freshDir();
  const file = join(dir, 'data.json');
  const validate = (value: unknown): number[] => {
    if (!Array.isArray(value) || !value.every((item) => typeof item === 'number')) throw new Error('expected a list of numbers');
    return value;
  };
  assert.deepEqual(await readJsonFile(file, validate, [7]), [7]);
  writeFileSync(file, '[1, 2]');
  assert.deepEqual(await readJsonFile(file, validate, []), [1, 2]);
  for (const [text, pattern] of [['[1, ', /not valid JSON/], ['["x"]', /expected a list of numbers/]] as const) {
    writeFileSync(file, text);
    await assert.rejects(readJsonFile(file, validate, []), (error: unknown) => {
      assert.ok(error instanceof EbpError);
      assert.equal(error.code, 'STATE_INVALID');
      assert.ok(error.message.startsWith(`${file} is corrupt: `));
      assert.match(error.message, pattern);
      assert.match(error.hint ?? '', /mv /);
      return true;
    });
  }
  await assert.rejects(readJsonFile(dir, validate, []), (error: unknown) => error instanceof EbpError && /cannot read/.test(error.message));
});
