import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, mkdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildPolicy, defaultShareTarget, parseShareSpec, preparePersistentHome, unreachableFolder, validateShareTarget } from '../../src/sandbox/request.js';
import type { HostIdentity } from '../../src/sandbox/privilege.js';

const me: HostIdentity = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, switchUser: false, name: 'me' };

test('share specs: SRC, SRC:DST, SRC:ro, SRC:DST:ro', () => {
  assert.deepEqual(parseShareSpec('/a'), { source: '/a', target: undefined, readOnly: false });
  assert.deepEqual(parseShareSpec('/a:/mnt/a'), { source: '/a', target: '/mnt/a', readOnly: false });
  assert.deepEqual(parseShareSpec('/a:ro'), { source: '/a', target: undefined, readOnly: true });
  assert.deepEqual(parseShareSpec('/a:/mnt/a:ro'), { source: '/a', target: '/mnt/a', readOnly: true });
  assert.throws(() => parseShareSpec(':x'));
  assert.throws(() => parseShareSpec('/a:/b:/c'));
});

test('folders in the home keep their place; others go under ~/Shared', () => {
  assert.equal(defaultShareTarget('/home/ann/Documents', '/home/ann'), '/home/ebp/Documents');
  assert.equal(defaultShareTarget('/home/ann/a/b', '/home/ann'), '/home/ebp/a/b');
  assert.equal(defaultShareTarget('/srv/data', '/home/ann'), '/home/ebp/Shared/data');
  assert.equal(defaultShareTarget('/home/ann', '/home/ann'), '/home/ebp/Shared/ann');
});

test('share targets cannot cover the system or escape with ..', () => {
  for (const bad of ['/', '/usr', '/usr/bin', '/etc', '/etc/x', '/proc', '/dev/shm', 'relative', '/home/ebp/../../etc', '/run/user/1000']) {
    assert.throws(() => validateShareTarget(bad), Error, bad);
  }
  assert.equal(validateShareTarget('/home/ebp/Documents/'), '/home/ebp/Documents');
  assert.equal(validateShareTarget('/mnt/data'), '/mnt/data');
});

test('a persistent home that is a symlink, or passes through one, is refused; a missing one is created 0700', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-home-'));
  mkdirSync(join(dir, 'real'));
  symlinkSync('/etc', join(dir, 'link'));
  symlinkSync('/', join(dir, 'rootlink'));
  assert.throws(() => preparePersistentHome(join(dir, 'link'), me), /not a plain directory/);
  assert.throws(() => preparePersistentHome(join(dir, 'rootlink', 'tmp', 'victim'), me), /symlink/);
  assert.throws(() => preparePersistentHome(join(dir, 'missing', 'home'), me), /does not exist/);
  const made = preparePersistentHome(join(dir, 'new'), me);
  assert.equal(made, join(dir, 'new'));
  assert.equal(preparePersistentHome(join(dir, 'real'), me), join(dir, 'real'));
});

test('a home inside a folder the sandbox uid can write is refused when ebp switches users', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-home-'));
  assert.throws(() => preparePersistentHome(join(dir, 'h'), { ...me, switchUser: true }), /inside a folder that sandboxes can write/);
});

test('a home owned by another uid is refused, never chowned', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-home-'));
  mkdirSync(join(dir, 'theirs'));
  assert.throws(() => preparePersistentHome(join(dir, 'theirs'), { ...me, uid: 4242 }), /belongs to uid/);
  assert.throws(() => preparePersistentHome('/', me), /root folder/);
});

test('policies have safe defaults', () => {
  const policy = buildPolicy({ command: ['true'], env: { LD_PRELOAD: 'x' } }, me);
  assert.equal(policy.network, 'none');
  assert.equal(policy.home.kind, 'ephemeral');
  assert.equal(policy.env['LD_PRELOAD'], undefined);
  assert.ok(policy.limits.memoryBytes > 0 && policy.limits.pids > 0);
  assert.throws(() => buildPolicy({ command: [] }, me), /no command/);
  assert.throws(() => buildPolicy({ command: ['a\0b'] }, me), /NUL/);
});

test('a share behind a folder the sandbox user cannot enter is refused with the folder named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-share-'));
  mkdirSync(join(dir, 'inner'));
  chmodSync(dir, 0o700);
  const other: HostIdentity = { uid: 4242, gid: 4242, switchUser: true, name: 'ebp-sandbox' };
  assert.equal(unreachableFolder(join(dir, 'inner'), other.uid), dir);
  assert.throws(() => buildPolicy({ command: ['true'], shares: [join(dir, 'inner')] }, other), /cannot enter .*chmod|cannot enter/);
  chmodSync(dir, 0o711);
  chmodSync(join(dir, 'inner'), 0o700);
  assert.equal(unreachableFolder(join(dir, 'inner'), other.uid), join(dir, 'inner'), 'the share itself is checked too');
  chmodSync(join(dir, 'inner'), 0o755);
  assert.equal(unreachableFolder(join(dir, 'inner'), other.uid), undefined);
  assert.equal(buildPolicy({ command: ['true'], shares: [join(dir, 'inner')] }, other).shares[0]?.source, join(dir, 'inner'));
});
