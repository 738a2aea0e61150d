// What the daemon says when sandboxes cannot be made ahead (sandbox/spares.ts): the shim's shell
// is missing. The spares themselves run real sandboxes: test/integration/sandbox-spares.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PREPARED_SHELL } from '../../src/sandbox/bwrap-args.js';
import { spareKey, SpareSandboxes } from '../../src/sandbox/spares.js';
import { cleanEnvironment, type SandboxPolicy } from '../../src/sandbox/policy.js';

test('without the shim\'s shell, the daemon is told why no spare is made, and how to fix it', () => {
  assert.match(SpareSandboxes.problem(4, '/nonexistent/bash') ?? '', /^\/nonexistent\/bash is missing .*every launch makes its own sandbox$/);
  assert.equal(SpareSandboxes.problem(0, '/nonexistent/bash'), undefined, 'none asked for: nothing to say');
  assert.equal(SpareSandboxes.problem(4, '/bin/sh'), undefined);
  assert.equal(PREPARED_SHELL, '/bin/sh');
});

test('a spare\'s key is the whole policy but the command and the environment, and the kind of I/O', () => {
  const policy: SandboxPolicy = {
    command: ['echo', 'one'], network: 'none', limits: { memoryBytes: 1 << 30, pids: 100, cpus: 1 },
    home: { kind: 'ephemeral', sizeBytes: 1 << 20 }, tmpSizeBytes: 1 << 20, shares: [], env: cleanEnvironment({ LANG: 'C.UTF-8' }), hostname: 'sandbox',
  };
  const key = spareKey(policy, false);
  assert.equal(spareKey({ ...policy, command: ['other'], env: {} }, false), key);
  assert.notEqual(spareKey(policy, true), key, 'a terminal spare is another kind');
  assert.notEqual(spareKey({ ...policy, limits: { ...policy.limits, memoryBytes: 1 << 29 } }, false), key);
  assert.notEqual(spareKey({ ...policy, home: { kind: 'persistent', hostPath: '/var/lib/ebp/homes/a/app' } }, false), key);
  assert.notEqual(spareKey({ ...policy, home: { kind: 'persistent', hostPath: '/var/lib/ebp/homes/b/app' } }, false), spareKey({ ...policy, home: { kind: 'persistent', hostPath: '/var/lib/ebp/homes/a/app' } }, false), 'another peer\'s home');
  assert.notEqual(spareKey({ ...policy, network: 'nat' }, false), key);
  assert.notEqual(spareKey({ ...policy, timeoutMs: 1000 }, false), key);
});
