import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EbpError } from '../../src/lib/errors.js';
import { generateIdentity } from '../../src/peer/identity.js';
import { TRUST_FILE, TrustStore } from '../../src/peer/trust-store.js';
import { scratchPaths } from './helpers/scratch.js';

const stateDir = scratchPaths('ebp-trust-');

function isCode(code: string, pattern?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof EbpError, String(error));
    assert.equal(error.code, code);
    if (pattern !== undefined) assert.match(error.message, pattern);
    return true;
  };
}

/** Two generated keys whose fingerprints (after 'SHA256:') start with the same `length` characters. */
function keysSharingPrefix(length: number): [string, string, string] {
  const seen = new Map<string, string>();
  for (;;) {
    const { publicKey, fingerprint } = generateIdentity();
    const prefix = fingerprint.slice(7, 7 + length);
    const other = seen.get(prefix);
    if (other !== undefined) return [other, publicKey, prefix];
    seen.set(prefix, publicKey);
  }
}

test('an absent file is an empty store; add, find, list and reopen', async () => {
  const dir = stateDir();
  const store = await TrustStore.open(dir);
  assert.deepEqual(store.list(), []);
  const alice = generateIdentity();
  const added = await store.add(alice.publicKey.replace(' ebp', ' alice@laptop'));
  assert.equal(added.fingerprint, alice.fingerprint);
  assert.equal(added.name, 'alice@laptop');
  assert.ok(!Number.isNaN(Date.parse(added.addedAt)));
  assert.equal(store.find(alice.fingerprint), added);
  assert.equal(store.find(alice.fingerprint.slice('SHA256:'.length)), added);
  const bob = await store.add(generateIdentity().publicKey, { name: 'Bob' });
  assert.equal(bob.name, 'Bob');
  assert.equal(statSync(join(dir, TRUST_FILE)).mode & 0o777, 0o600);

  const reopened = await TrustStore.open(dir);
  assert.deepEqual(reopened.list(), [added, bob]);
});

test('adding a trusted key again is idempotent, and renames it when a new name is given', async () => {
  const store = await TrustStore.open(stateDir());
  const key = generateIdentity().publicKey;
  const first = await store.add(key, { name: 'one' });
  assert.equal(await store.add(key), first);
  const renamed = await store.add(key, { name: 'two' });
  assert.equal(renamed.name, 'two');
  assert.equal(renamed.addedAt, first.addedAt);
  assert.equal(store.list().length, 1);
});

test('a key without a usable comment gets a name from its fingerprint', async () => {
  const store = await TrustStore.open(stateDir());
  const identity = generateIdentity();
  const added = await store.add(identity.publicKey.replace(' ebp', ''));
  assert.equal(added.name, `key-${identity.fingerprint.slice(7, 15)}`);
});

test('bad keys and names are refused', async () => {
  const store = await TrustStore.open(stateDir());
  await assert.rejects(store.add('ssh-dss AAAA'), isCode('KEY_INVALID'));
  await assert.rejects(store.add(generateIdentity().publicKey, { name: 'bad\nname' }), isCode('USAGE', /control/));
  assert.equal(store.list().length, 0);
});

test('remove by full fingerprint, by prefix with or without SHA256:, and by name', async () => {
  const store = await TrustStore.open(stateDir());
  const a = await store.add(generateIdentity().publicKey, { name: 'alice' });
  const b = await store.add(generateIdentity().publicKey, { name: 'bob' });
  const c = await store.add(generateIdentity().publicKey, { name: 'carol' });
  const d = await store.add(generateIdentity().publicKey, { name: 'dave' });
  assert.equal(await store.remove(a.fingerprint), a);
  assert.equal(await store.remove(b.fingerprint.slice(0, 7 + 10)), b);
  assert.equal(await store.remove(c.fingerprint.slice(7, 7 + 10)), c);
  assert.equal(await store.remove('dave'), d);
  assert.deepEqual(store.list(), []);
  assert.deepEqual((await TrustStore.open(store.stateDir)).list(), []);
});

test('an ambiguous name or prefix lists the candidates; no match is NOT_FOUND', async () => {
  const store = await TrustStore.open(stateDir());
  const [one, two, prefix] = keysSharingPrefix(4);
  const x = await store.add(one, { name: 'same' });
  const y = await store.add(two, { name: 'same' });
  const listsBoth = (pattern: RegExp) => (error: unknown): boolean => {
    isCode('USAGE', pattern)(error);
    assert.ok(error instanceof EbpError && error.message.includes(`${x.fingerprint}  same`) && error.message.includes(`${y.fingerprint}  same`));
    return true;
  };
  assert.throws(() => store.resolve('same'), listsBoth(/"same" matches 2 trusted keys \(several trusted keys have this name\)/));
  assert.throws(() => store.resolve(prefix), listsBoth(/matches 2 trusted keys \(the prefix is not unique\)/));
  await assert.rejects(store.remove(`SHA256:${prefix}`), listsBoth(/not unique/));
  assert.equal(store.list().length, 2, 'nothing removed on ambiguity');
  // Enough characters to tell them apart picks one.
  assert.equal(store.resolve(x.fingerprint.slice(0, 7 + 20)), x);

  assert.throws(() => store.resolve(prefix.slice(0, 3)), isCode('NOT_FOUND', /at least 4 characters/));
  await assert.rejects(store.remove('SHA256:zzzzzzzz'), isCode('NOT_FOUND', /no trusted key matches "SHA256:zzzzzzzz"/));
  await assert.rejects(store.remove('  '), isCode('USAGE'));
});

test('an exact name wins over a fingerprint prefix; SHA256: marks a prefix', async () => {
  const store = await TrustStore.open(stateDir());
  const key = await store.add(generateIdentity().publicKey, { name: 'n1' });
  const prefix = key.fingerprint.slice(7, 12);
  const other = await store.add(generateIdentity().publicKey, { name: prefix });
  assert.equal(store.resolve(prefix), other);
  assert.equal(store.resolve(`SHA256:${prefix}`), key);
});

test('a corrupt file is reported clearly on open', async () => {
  const cases: [string, RegExp][] = [
    ['{not json', /not valid JSON/],
    ['[]', /expected a JSON object/],
    ['{"version": 2, "keys": []}', /unsupported version 2/],
    ['{"version": 1, "keys": {}}', /`keys` must be an array/],
    ['{"version": 1, "keys": [{"fingerprint": "SHA256:x", "publicKey": "ssh-ed25519 AAAA", "name": "a", "addedAt": "2024-01-01T00:00:00Z"}]}', /keys\[0\]\.publicKey/],
  ];
  const good = generateIdentity();
  cases.push([
    JSON.stringify({ version: 1, keys: [{ fingerprint: generateIdentity().fingerprint, publicKey: good.publicKey, name: 'a', addedAt: '2024-01-01T00:00:00Z' }] }),
    /does not match its key/,
  ]);
  const entry = { fingerprint: good.fingerprint, publicKey: good.publicKey, name: 'a', addedAt: '2024-01-01T00:00:00Z' };
  cases.push([JSON.stringify({ version: 1, keys: [entry, entry] }), /listed twice/]);
  cases.push([JSON.stringify({ version: 1, keys: [{ ...entry, addedAt: 'yesterday' }] }), /addedAt/]);
  for (const [text, pattern] of cases) {
    const dir = stateDir();
    mkdirSync(dir, { recursive: true });
    const file = join(dir, TRUST_FILE);
    writeFileSync(file, text);
    await assert.rejects(TrustStore.open(dir), (error: unknown) => {
      isCode('STATE_INVALID', pattern)(error);
      assert.ok(error instanceof EbpError && error.message.includes(file) && error.hint?.includes('mv ') === true);
      return true;
    });
    assert.equal(readFileSync(file, 'utf8'), text, 'a corrupt file is left alone');
  }
});

test('concurrent changes are all kept', async () => {
  const store = await TrustStore.open(stateDir());
  const keys = Array.from({ length: 8 }, () => generateIdentity().publicKey);
  await Promise.all(keys.map((key, index) => store.add(key, { name: `k${index}` })));
  assert.equal(store.list().length, 8);
  assert.equal((await TrustStore.open(store.stateDir)).list().length, 8);
  await Promise.all(['k1', 'k3', 'k5'].map((name) => store.remove(name)));
  assert.deepEqual((await TrustStore.open(store.stateDir)).list().map((key) => key.name), ['k0', 'k2', 'k4', 'k6', 'k7']);
});
