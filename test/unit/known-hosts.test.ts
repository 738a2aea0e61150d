import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EbpError } from '../../src/lib/errors.js';
import { generateIdentity } from '../../src/peer/identity.js';
import { hostKeyChanged, KNOWN_PEERS_FILE, KnownHosts, normalizeEndpoint } from '../../src/peer/known-hosts.js';
import { scratchPaths } from './helpers/scratch.js';

const stateDir = scratchPaths('ebp-known-');

const A = generateIdentity().fingerprint;
const B = generateIdentity().fingerprint;

test('new, then match after remember, then changed for another key', async () => {
  const dir = stateDir();
  const known = await KnownHosts.open(dir);
  assert.deepEqual(known.check('alice.local:20101', A), { status: 'new' });
  await known.remember('alice.local:20101', A, 'alice');
  assert.deepEqual(known.check('alice.local:20101', A), { status: 'match' });
  assert.deepEqual(known.check('ALICE.local:20101', A), { status: 'match' }, 'host names are case-insensitive');
  assert.deepEqual(known.check('alice.local:20101', B), { status: 'changed', expected: A });
  assert.deepEqual(known.check('alice.local:20102', B), { status: 'new' }, 'another port is another peer');
  assert.equal(statSync(join(dir, KNOWN_PEERS_FILE)).mode & 0o777, 0o600);

  const reopened = await KnownHosts.open(dir);
  assert.deepEqual(reopened.check('alice.local:20101', B), { status: 'changed', expected: A });
  assert.equal(reopened.list()[0]?.name, 'alice');
});

test('forget makes the address new again; remember replaces a key', async () => {
  const dir = stateDir();
  const known = await KnownHosts.open(dir);
  await known.remember('[fe80::1%eth0]:20101', A);
  assert.equal(await known.forget('[FE80::1%eth0]:20101'), true);
  assert.equal(await known.forget('[fe80::1%eth0]:20101'), false);
  assert.deepEqual(known.check('[fe80::1%eth0]:20101', B), { status: 'new' });
  await known.remember('198.18.0.2:20101', A);
  await known.remember('198.18.0.2:20101', B);
  assert.deepEqual((await KnownHosts.open(dir)).check('198.18.0.2:20101', B), { status: 'match' });
  assert.equal(known.list().length, 1);
});

test('concurrent remembers are all kept', async () => {
  const dir = stateDir();
  const known = await KnownHosts.open(dir);
  await Promise.all(Array.from({ length: 10 }, (_, i) => known.remember(`10.0.0.${i + 1}:20101`, A)));
  assert.equal((await KnownHosts.open(dir)).list().length, 10);
});

test('endpoints are validated and normalized', () => {
  assert.equal(normalizeEndpoint(' Host.Example.:20101 '), 'host.example:20101');
  assert.equal(normalizeEndpoint('[2001:DB8::1]:22'), '[2001:db8::1]:22');
  for (const bad of ['host', 'host:0', 'host:70000', '2001:db8::1:22', '[1.2.3.4]:22', 'a b:1', '-x:1', ':22', 'host:22/x']) {
    assert.throws(() => normalizeEndpoint(bad), (error: unknown) => error instanceof EbpError && error.code === 'USAGE', bad);
  }
});

test('malformed fingerprints are refused', async () => {
  const known = await KnownHosts.open(stateDir());
  assert.throws(() => known.check('h:1', 'SHA256:nope'), /invalid key fingerprint/);
  await assert.rejects(known.remember('h:1', 'MD5:00'), /invalid key fingerprint/);
});

test('hostKeyChanged shows both fingerprints and how to resolve it', () => {
  const error = hostKeyChanged('alice.local:20101', A, B);
  assert.equal(error.code, 'HOST_KEY_CHANGED');
  assert.ok(error.message.includes(A) && error.message.includes(B) && error.message.includes('alice.local:20101'));
  assert.match(error.hint ?? '', /ebp peers forget alice\.local:20101/);
});

test('a corrupt file is reported on open', async () => {
  for (const [text, pattern] of [
    ['nope', /not valid JSON/],
    ['{"version":1,"peers":[{"endpoint":"h:1","fingerprint":"x","addedAt":"2024-01-01T00:00:00Z"}]}', /fingerprint/],
    ['{"version":1,"peers":[{"endpoint":"H:1","fingerprint":"' + A + '","addedAt":"2024-01-01T00:00:00Z"}]}', /not normalized/],
  ] as const) {
    const dir = stateDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, KNOWN_PEERS_FILE), text);
    await assert.rejects(KnownHosts.open(dir), (error: unknown) => error instanceof EbpError && error.code === 'STATE_INVALID' && pattern.test(error.message));
  }
});
