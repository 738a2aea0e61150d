import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, fstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { hostEtcEntries, HOST_ETC_ALWAYS, HOST_ETC_NETWORK, MAX_COPIED_ETC_BYTES, openHostEtcFiles } from '../../src/sandbox/etc.js';

const root = mkdtempSync(join(tmpdir(), 'ebp-etc-'));
after(() => { rmSync(root, { recursive: true, force: true }); });

/** A fake /etc with one entry of each kind, and a folder outside the allowed places. */
function fakeEtc(): { etc: string; allowed: string[]; outside: string } {
  const base = mkdtempSync(join(root, 'case-'));
  const etc = join(base, 'etc');
  const outside = join(base, 'private');
  mkdirSync(etc, { recursive: true });
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(etc, 'plain'), 'plain file\n', { mode: 0o644 });
  writeFileSync(join(etc, 'closed'), 'owner only\n');
  chmodSync(join(etc, 'closed'), 0o600);
  mkdirSync(join(etc, 'folder'), { recursive: true });
  writeFileSync(join(etc, 'big'), Buffer.alloc(MAX_COPIED_ETC_BYTES + 1));
  chmodSync(join(etc, 'big'), 0o644);
  execFileSync('mkfifo', [join(etc, 'fifo')]);
  chmodSync(join(etc, 'fifo'), 0o644);
  writeFileSync(join(etc, 'target'), 'linked inside\n', { mode: 0o644 });
  symlinkSync('target', join(etc, 'inside-link'));
  writeFileSync(join(outside, 'secret'), 'readable, but not in an allowed place\n', { mode: 0o644 });
  symlinkSync(join(outside, 'secret'), join(etc, 'outside-link'));
  return { etc, allowed: [`${etc}/`], outside };
}

test('only world-readable regular files in the allowed places are opened; the rest is left to bind mounts', () => {
  const { etc, allowed } = fakeEtc();
  const entries = ['plain', 'closed', 'folder', 'big', 'fifo', 'inside-link', 'outside-link', 'missing'];
  const copied = openHostEtcFiles(entries, etc, allowed);
  try {
    assert.deepEqual(copied.names, ['plain', 'inside-link']);
    assert.equal(copied.fds.length, 2);
    // The descriptors are the files themselves, read from the start.
    assert.equal(readFileSync(copied.fds[0] ?? -1, 'utf8'), 'plain file\n');
    assert.equal(readFileSync(copied.fds[1] ?? -1, 'utf8'), 'linked inside\n');
  } finally {
    copied.close();
  }
});

test('close() closes every descriptor it opened', () => {
  const { etc, allowed } = fakeEtc();
  const copied = openHostEtcFiles(['plain', 'inside-link'], etc, allowed);
  const fds = [...copied.fds];
  assert.equal(fds.length, 2);
  copied.close();
  for (const fd of fds) assert.throws(() => fstatSync(fd), /EBADF/);
  copied.close();
});

test('a file replaced by a link to somewhere else is checked again, not trusted from before', () => {
  const { etc, allowed, outside } = fakeEtc();
  const first = openHostEtcFiles(['plain'], etc, allowed);
  assert.deepEqual(first.names, ['plain']);
  first.close();
  rmSync(join(etc, 'plain'));
  symlinkSync(join(outside, 'secret'), join(etc, 'plain'));
  const second = openHostEtcFiles(['plain'], etc, allowed);
  assert.deepEqual(second.names, []);
  second.close();
});

test('the network entries come only with network access', () => {
  assert.deepEqual(hostEtcEntries('none'), HOST_ETC_ALWAYS);
  assert.deepEqual(hostEtcEntries('nat'), [...HOST_ETC_ALWAYS, ...HOST_ETC_NETWORK]);
  for (const secret of ['shadow', 'gshadow', 'sudoers', 'ssh', 'passwd', 'group']) assert.ok(!hostEtcEntries('nat').includes(secret), secret);
});
