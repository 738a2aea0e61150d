// The on-disk cache of the compiled seccomp program: what it writes, when it trusts what it
// reads (its own key, a file of ours that nobody else can write) and when it compiles again.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cacheKey, loadSeccompProgram } from '../../src/sandbox/seccomp-cache.js';
import { seccompProgram } from '../../src/sandbox/seccomp.js';
import { scratchPaths } from './helpers/scratch.js';

const freshDir = scratchPaths('ebp-seccomp-cache-');
const IS_ROOT = process.getuid?.() === 0;

test('a miss compiles, and writes the key line then the program, 0600', async () => {
  const dir = freshDir();
  const program = await loadSeccompProgram(dir);
  assert.deepEqual(program, seccompProgram());
  const file = join(dir, 'seccomp-default.bpf');
  assert.deepEqual(readFileSync(file), Buffer.concat([Buffer.from(`${cacheKey({})}\n`), program]));
  assert.equal(statSync(file).mode & 0o777, 0o600);
  // allowPtrace is a different program in a file of its own.
  const ptrace = await loadSeccompProgram(dir, { allowPtrace: true });
  assert.notDeepEqual(ptrace, program);
  assert.ok(existsSync(join(dir, 'seccomp-ptrace.bpf')));
});

test('a hit is read from the file: what the file holds is what is used', async () => {
  const dir = freshDir();
  await loadSeccompProgram(dir);
  const file = join(dir, 'seccomp-default.bpf');
  // Oracle: a program that no compiler made (8 zero bytes) comes back, so the file was read.
  writeFileSync(file, Buffer.concat([Buffer.from(`${cacheKey({})}\n`), Buffer.alloc(8)]), { mode: 0o600 });
  assert.deepEqual(await loadSeccompProgram(dir), Buffer.alloc(8));
});

test('another key, a torn program, a file others can write or a symlink: compiled again', async () => {
  const dir = freshDir();
  const real = await loadSeccompProgram(dir);
  const file = join(dir, 'seccomp-default.bpf');
  const fake = (key: string, program: Buffer): void => {
    rmSync(file, { force: true });
    writeFileSync(file, Buffer.concat([Buffer.from(`${key}\n`), program]), { mode: 0o600 });
  };
  fake(cacheKey({}).replace('"arch"', '"arch-other"'), Buffer.alloc(8));
  assert.deepEqual(await loadSeccompProgram(dir), real, 'a key that differs');
  fake(cacheKey({}), Buffer.alloc(12));
  assert.deepEqual(await loadSeccompProgram(dir), real, 'not whole 8-byte instructions');
  fake(cacheKey({}), Buffer.alloc(0));
  assert.deepEqual(await loadSeccompProgram(dir), real, 'no program');
  fake(cacheKey({}), Buffer.alloc(8));
  chmodSync(file, 0o620);
  assert.deepEqual(await loadSeccompProgram(dir), real, 'group-writable');
  const elsewhere = `${freshDir()}.bpf`;
  writeFileSync(elsewhere, Buffer.concat([Buffer.from(`${cacheKey({})}\n`), Buffer.alloc(8)]), { mode: 0o600 });
  rmSync(file, { force: true });
  symlinkSync(elsewhere, file);
  assert.deepEqual(await loadSeccompProgram(dir), real, 'a symlink');
});

test('a file of another user is not trusted', { skip: IS_ROOT ? false : 'needs root to give a file away' }, async () => {
  const dir = freshDir();
  const real = await loadSeccompProgram(dir);
  const file = join(dir, 'seccomp-default.bpf');
  writeFileSync(file, Buffer.concat([Buffer.from(`${cacheKey({})}\n`), Buffer.alloc(8)]), { mode: 0o600 });
  chownSync(file, 12345, 12345);
  assert.deepEqual(await loadSeccompProgram(dir), real);
});

test('{} and { allowPtrace: false } are one key: the two spellings do not evict each other', async () => {
  const dir = freshDir();
  await loadSeccompProgram(dir);
  const file = join(dir, 'seccomp-default.bpf');
  writeFileSync(file, Buffer.concat([Buffer.from(`${cacheKey({})}\n`), Buffer.alloc(8)]), { mode: 0o600 });
  assert.deepEqual(await loadSeccompProgram(dir, { allowPtrace: false }), Buffer.alloc(8));
});

test('caches of the earlier format are removed when a new one is written', async () => {
  const dir = freshDir();
  await loadSeccompProgram(dir);
  const old = join(dir, `seccomp-${'ab'.repeat(12)}.bpf`);
  writeFileSync(old, 'old');
  rmSync(join(dir, 'seccomp-default.bpf'));
  await loadSeccompProgram(dir);
  assert.equal(existsSync(old), false);
  assert.ok(existsSync(join(dir, 'seccomp-default.bpf')));
});
