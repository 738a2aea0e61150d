import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import ssh2 from 'ssh2';
import { EbpError } from '../../src/lib/errors.js';
import { decodePrivateKey, encodePrivateKey, generateIdentity, identityPaths, loadOrCreateIdentity } from '../../src/peer/identity.js';
import { parsePublicKey } from '../../src/peer/keys.js';
import { scratchPaths } from './helpers/scratch.js';

const hasKeygen = spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined;
const NO_KEYGEN = 'ssh-keygen (openssh-client) is not installed';

const stateDir = scratchPaths('ebp-identity-');

test('first use creates the key pair with private permissions; later loads return the same key', async () => {
  const dir = stateDir();
  const created = await loadOrCreateIdentity(dir);
  const paths = identityPaths(dir);
  assert.equal(statSync(paths.dir).mode & 0o777, 0o700);
  assert.equal(statSync(paths.privateKey).mode & 0o777, 0o600);
  assert.equal(statSync(paths.publicKey).mode & 0o777, 0o644);
  assert.match(created.publicKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} ebp$/);
  assert.equal(readFileSync(paths.publicKey, 'utf8'), `${created.publicKey}\n`);
  assert.equal(readFileSync(paths.privateKey, 'utf8'), created.privateKey);
  const parsed = parsePublicKey(created.publicKey);
  assert.equal(parsed.fingerprint, created.fingerprint);
  assert.ok(parsed.blob.equals(created.publicBlob));

  const loaded = await loadOrCreateIdentity(dir);
  assert.equal(loaded.fingerprint, created.fingerprint);
  assert.equal(loaded.privateKey, created.privateKey);
  assert.equal(loaded.publicKey, created.publicKey);
});

test('concurrent first starts agree on one identity', async () => {
  const dir = stateDir();
  const all = await Promise.all([loadOrCreateIdentity(dir), loadOrCreateIdentity(dir), loadOrCreateIdentity(dir)]);
  assert.equal(new Set(all.map((identity) => identity.fingerprint)).size, 1);
  assert.equal((await loadOrCreateIdentity(dir)).fingerprint, all[0].fingerprint);
});

test('the private key follows the openssh-key-v1 layout and parses with ssh2', () => {
  const identity = generateIdentity();
  assert.ok(identity.privateKey.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----\n'));
  assert.ok(identity.privateKey.endsWith('\n-----END OPENSSH PRIVATE KEY-----\n'));
  for (const line of identity.privateKey.trim().split('\n').slice(1, -1)) assert.ok(line.length <= 70);
  const decoded = decodePrivateKey(identity.privateKey);
  assert.equal(decoded.comment, 'ebp');

  const key = ssh2.utils.parseKey(identity.privateKey);
  if (key instanceof Error) throw key;
  assert.equal(key.type, 'ssh-ed25519');
  assert.ok(key.isPrivateKey());
  assert.ok(key.getPublicSSH().equals(identity.publicBlob));
  // The key signs, and the public half verifies it.
  const data = Buffer.from('challenge');
  const signature = key.sign(data);
  assert.ok(!(signature instanceof Error));
  assert.equal(key.verify(data, signature), true);
});

test('seeds and public keys agree with node:crypto key generation', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const decoded = decodePrivateKey(encodePrivateKey(seed, pub, 'x'));
  assert.ok(decoded.seed.equals(seed) && decoded.pub.equals(pub));
  assert.equal(decoded.comment, 'x');
  assert.throws(() => decodePrivateKey(encodePrivateKey(seed, Buffer.alloc(32, 1))), /does not belong/);
});

test('ssh-keygen derives the same public key and fingerprint', { skip: hasKeygen ? false : NO_KEYGEN }, async () => {
  const dir = stateDir();
  const identity = await loadOrCreateIdentity(dir);
  const paths = identityPaths(dir);
  const derived = execFileSync('ssh-keygen', ['-y', '-f', paths.privateKey], { encoding: 'utf8' }).trim();
  assert.equal(derived.split(' ').slice(0, 2).join(' '), identity.publicKey.split(' ').slice(0, 2).join(' '));
  const listed = execFileSync('ssh-keygen', ['-lf', paths.publicKey], { encoding: 'utf8' });
  assert.equal(listed.split(' ')[1], identity.fingerprint);
});

test('a key made by ssh-keygen is loaded as is', { skip: hasKeygen ? false : NO_KEYGEN }, async () => {
  const dir = stateDir();
  const paths = identityPaths(dir);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'made elsewhere', '-f', paths.privateKey]);
  const listed = execFileSync('ssh-keygen', ['-lf', paths.publicKey], { encoding: 'utf8' }).split(' ')[1];
  const identity = await loadOrCreateIdentity(dir);
  assert.equal(identity.fingerprint, listed);
});

test('a private key readable by group or others is refused with the chmod fix', async () => {
  const dir = stateDir();
  await loadOrCreateIdentity(dir);
  const { privateKey } = identityPaths(dir);
  for (const mode of [0o640, 0o604, 0o644]) {
    chmodSync(privateKey, mode);
    await assert.rejects(loadOrCreateIdentity(dir), (error: unknown) => {
      assert.ok(error instanceof EbpError);
      assert.equal(error.code, 'STATE_INVALID');
      assert.match(error.message, /accessible by others/);
      assert.equal(error.hint, `chmod 600 ${privateKey}`);
      return true;
    });
  }
  chmodSync(privateKey, 0o600);
  await loadOrCreateIdentity(dir);
});

test('a .pub that belongs to another key is refused; a missing .pub is written again', async () => {
  const dir = stateDir();
  const identity = await loadOrCreateIdentity(dir);
  const { publicKey } = identityPaths(dir);
  writeFileSync(publicKey, `${generateIdentity().publicKey}\n`);
  await assert.rejects(loadOrCreateIdentity(dir), /does not match the private key/);
  rmSync(publicKey);
  assert.equal((await loadOrCreateIdentity(dir)).fingerprint, identity.fingerprint);
  assert.equal(readFileSync(publicKey, 'utf8'), `${identity.publicKey}\n`);
});

test('a corrupt or encrypted private key is reported, not replaced', async () => {
  const dir = stateDir();
  await loadOrCreateIdentity(dir);
  const { privateKey } = identityPaths(dir);
  writeFileSync(privateKey, 'garbage\n', { mode: 0o600 });
  await assert.rejects(loadOrCreateIdentity(dir), (error: unknown) => error instanceof EbpError && error.code === 'STATE_INVALID' && /not a usable key/.test(error.message));
  assert.equal(readFileSync(privateKey, 'utf8'), 'garbage\n');

  // Tamper with the seed: the public key no longer belongs to it.
  const good = generateIdentity().privateKey;
  const body = Buffer.from(good.split('\n').slice(1, -2).join(''), 'base64');
  const seedAt = body.lastIndexOf(decodePrivateKey(good).pub) - 32; // the secret field is seed||pub
  body[seedAt] = (body[seedAt] ?? 0) ^ 0xff;
  const tampered = `-----BEGIN OPENSSH PRIVATE KEY-----\n${body.toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`;
  assert.throws(() => decodePrivateKey(tampered), /does not belong to the private key/);
});
