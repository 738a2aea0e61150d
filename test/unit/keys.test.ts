import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EbpError } from '../../src/lib/errors.js';
import { fingerprintOf, formatPublicKey, isFingerprint, MAX_PUBLIC_KEY_LENGTH, parsePublicKey, wireString } from '../../src/peer/keys.js';

const hasKeygen = spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined;
const NO_KEYGEN = 'ssh-keygen (openssh-client) is not installed';

// Lines and fingerprints made once with `ssh-keygen -t TYPE` and `ssh-keygen -lf`.
const VECTORS = [
  {
    line: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILm1w0D7E+WfM+dJity35HNoJoWsCY0AKaLtOEhwihQ9 vector@test',
    fingerprint: 'SHA256:uu4phJSJQkj8jpaVUMTrZD0FwFbvwivlTN/SeJtHW+w',
  },
  {
    line: 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBF7DrkjGRT1RnuauDFB2knbeOjfrzaCjJ2f8GxkemfnKl5xmEp/KU0/RXjTOfM6JI5Q9PuBzscgLeMMG409wdVk= vector@test',
    fingerprint: 'SHA256:wQHZINZlGT0UFUMLx8jJfDvMvct2B4ZlGR5v9wRKCC8',
  },
  {
    line: 'ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBErwThr4fFumKU02kXmtuDusT87dkj5rLGr3AclxKFevqsuqZtR8eoef/pL+EFWT1vYoxvh9A4+K+vVvNf4i11exesGqy+zU7v6HQzOzqW0Vy7wj76EXUDUnOASrzfg8YQ== vector@test',
    fingerprint: 'SHA256:Mugw0IgivPm13st2j/69XTQ+VMc4ZW/HzpAKi1eENmI',
  },
  {
    line: 'ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBADENWvI65Yow0+MT/He260iEHu+1u4JJHIjT2PT+HNuOm4niYOc2iIvXkyEwBbKSjnIFzS1tPLp2nMUcrp7lv745gHUMI4o0CgYZKQE/rzaRVXOC6sDPPF17jaCyHVrFm7WZgsadV1qiZYblKZi28YbkbGc5pY4KHyxVZTGN7K9KNq55Q== vector@test',
    fingerprint: 'SHA256:Oiz6LO8wPyCUxm2ZJ+OZMOhf7k7N4TditZyuQgd6fZs',
  },
  {
    line: 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCjwVMGHbf5oJZzrg2XOIpe2x1qFqh2y86rAlJPAD6v71BANjceoKmZHw20Wzb4KwxG9tTOb7hFg6TmhQO5pJp9lt40R4vBtvIQZ2KexJHDcT4YUzfuqbycxKWSXM0mSWz+oYtc+KBcoUcWlPCatwmoFzSkMkmnbOA53COWTjgEzKkS8J6BLzOpBAOojjLPVdp1RDWZME5ptSLuGyr4WjFCfqp4QBAiVGt/CHTZbnBE5T3luT4R1UETS7uD3vcLtIe+5PmLdRx6KQoSB/pqdXtrPgzXqoeuZPgpueaKpV9vulhK2tlZve4sfFPcZHyvN1N63sUAbLmI8WVLDNVH5MCB vector@test',
    fingerprint: 'SHA256:6lDh3ppKEaEDYuDu3C07fsDWLIDEitnyfFglZFHo6f4',
  },
] as const;

const ED25519 = VECTORS[0];

function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => parsePublicKey(text),
    (error: unknown) => error instanceof EbpError && error.code === 'KEY_INVALID' && pattern.test(error.message),
    `expected KEY_INVALID matching ${pattern} for ${JSON.stringify(text.slice(0, 80))}`,
  );
}

function lineFor(type: string, blob: Buffer): string {
  return `${type} ${blob.toString('base64')}`;
}

test('fingerprints match ssh-keygen for every supported type (fixed vectors)', () => {
  for (const vector of VECTORS) {
    const key = parsePublicKey(vector.line);
    assert.equal(key.fingerprint, vector.fingerprint, vector.line.split(' ')[0]);
    assert.equal(key.type, vector.line.split(' ')[0]);
    assert.equal(key.comment, 'vector@test');
    assert.equal(fingerprintOf(key.blob), vector.fingerprint);
    assert.equal(formatPublicKey(key.type, key.blob, key.comment), vector.line);
    assert.ok(isFingerprint(key.fingerprint));
  }
});

test('fingerprint is SHA256: plus unpadded base64 of sha256(blob)', () => {
  assert.equal(fingerprintOf(Buffer.alloc(0)), 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU');
  assert.ok(!isFingerprint('SHA256:short'));
  assert.ok(!isFingerprint('MD5:aa'));
});

test('fingerprint of a freshly generated key matches ssh-keygen -lf', { skip: hasKeygen ? false : NO_KEYGEN }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-keys-'));
  try {
    for (const type of ['ed25519', 'ecdsa']) {
      const file = join(dir, `id_${type}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'fresh key', '-f', file]);
      const listed = execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1];
      const key = parsePublicKey(readFileSync(`${file}.pub`, 'utf8'));
      assert.equal(key.fingerprint, listed);
      assert.equal(key.comment, 'fresh key');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('whitespace around and between fields is accepted; no comment gives an empty one', () => {
  const [type, data] = ED25519.line.split(' ');
  assert.equal(parsePublicKey(`  \t${type}\t\t${data}   spaced   comment \n`).comment, 'spaced comment');
  assert.equal(parsePublicKey(`${type} ${data}`).comment, '');
  assert.equal(parsePublicKey(`\uFEFF${ED25519.line}\r\n`).fingerprint, ED25519.fingerprint);
  assert.equal(formatPublicKey(type ?? '', parsePublicKey(ED25519.line).blob), `${type} ${data}`);
});

test('authorized_keys options before the key are refused with a message', () => {
  rejects(`from="198.18.0.1,198.19.1.0/24" ${ED25519.line}`, /options/);
  rejects(`command="echo a b",no-pty ${ED25519.line}`, /options/);
  rejects(`restrict ${ED25519.line}`, /options/);
  rejects(`no-pty,no-agent-forwarding ${ED25519.line}`, /options/);
});

test('unsupported and unknown key types are named', () => {
  rejects('ssh-dss AAAAB3NzaC1kc3MAAACBAP= x', /unsupported key type `ssh-dss`.*ssh-ed25519/);
  rejects('ssh-ed25519-cert-v01@openssh.com AAAA x', /certificates/);
  rejects('sk-ssh-ed25519@openssh.com AAAA x', /security-key/);
  rejects('-----BEGIN OPENSSH PRIVATE KEY-----', /PEM/);
  rejects('hello', /unsupported key type `hello`/);
});

test('bad input: empty, too long, several lines, control characters, bad base64', () => {
  rejects('', /empty/);
  rejects('   \n ', /empty/);
  rejects(`${ED25519.line} ${'x'.repeat(MAX_PUBLIC_KEY_LENGTH)}`, /too long/);
  rejects(`${ED25519.line}\n${ED25519.line}`, /several lines/);
  rejects(`${ED25519.line} evil\u001b[2Jcomment`, /control characters/);
  rejects(`${ED25519.line} bidi\u202ecomment`, /control characters/);
  rejects('ssh-ed25519', /no key data/);
  rejects('ssh-ed25519 AAAA!!!!', /base64/);
  rejects('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILm1w0D7E+WfM+dJity35HNoJoWsCY0AKaLtOEhwihQ', /base64/);
  // "QR==" decodes like "QQ==": the stray bits make it non-canonical.
  rejects('ssh-ed25519 QR==', /canonical/);
});

test('the blob must hold the declared type and a well-formed key', () => {
  const ed = parsePublicKey(ED25519.line).blob;
  rejects(lineFor('ssh-rsa', ed), /is a `ssh-ed25519` key but the line says `ssh-rsa`/);
  rejects(lineFor('ssh-ed25519', ed.subarray(0, ed.length - 1)), /truncated/);
  rejects(lineFor('ssh-ed25519', Buffer.concat([ed, Buffer.from([0])])), /trailing/);
  rejects(lineFor('ssh-ed25519', Buffer.concat([wireString('ssh-ed25519'), wireString(Buffer.alloc(31))])), /32 bytes/);
  rejects(lineFor('ssh-ed25519', Buffer.concat([wireString('ssh-ed25519'), Buffer.from([0xff, 0xff, 0xff, 0xff])])), /truncated/);

  const p256 = parsePublicKey(VECTORS[1].line).blob;
  const wrongCurve = Buffer.concat([wireString('ecdsa-sha2-nistp256'), wireString('nistp384'), p256.subarray(4 + 19 + 4 + 8)]);
  rejects(lineFor('ecdsa-sha2-nistp256', wrongCurve), /curve `nistp384`/);
  const offCurve = Buffer.from(p256);
  offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] ?? 0) ^ 1;
  rejects(lineFor('ecdsa-sha2-nistp256', offCurve), /valid ecdsa-sha2-nistp256 key/);

  const smallRsa = Buffer.concat([wireString('ssh-rsa'), wireString(Buffer.from([1, 0, 1])), wireString(Buffer.concat([Buffer.from([0x00, 0xc1]), Buffer.alloc(63, 0x11)]))]);
  rejects(lineFor('ssh-rsa', smallRsa), /too small/);
  const negative = Buffer.concat([wireString('ssh-rsa'), wireString(Buffer.from([0x81])), wireString(Buffer.alloc(256, 0x11))]);
  rejects(lineFor('ssh-rsa', negative), /positive/);
});

test('formatPublicKey refuses a comment with line breaks', () => {
  const key = parsePublicKey(ED25519.line);
  assert.throws(() => formatPublicKey(key.type, key.blob, 'a\nb'), /control characters/);
});
