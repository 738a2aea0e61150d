// What `ebp:icon APP` serves: only the catalogued icon of the app, only if it really is the image
// its name says, at most MAX_ICON_BYTES. And the launcher's fallback to the last known address,
// which keeps the fingerprint as the authority.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SharedApp } from '../../src/catalog/catalog.js';
import { MAX_ICON_BYTES, readAppIcon } from '../../src/catalog/icon-file.js';
import { EbpError } from '../../src/lib/errors.js';
import { addressTarget, resolveWithFallback } from '../../src/peer/fallback.js';

const dir = mkdtempSync(join(tmpdir(), 'ebp-icon-'));
after(() => { rmSync(dir, { recursive: true, force: true }); });
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from('rest of a png')]);

function app(iconPath: string | undefined): SharedApp {
  return { id: 'x', ...(iconPath === undefined ? {} : { iconPath }) } as unknown as SharedApp;
}

function notFound(error: unknown): boolean {
  return error instanceof EbpError && error.code === 'NOT_FOUND';
}

describe('readAppIcon', () => {
  it('serves the catalogued PNG with its type', async () => {
    const file = join(dir, 'a.png');
    writeFileSync(file, PNG);
    assert.deepEqual(await readAppIcon(app(file)), { type: 'image/png', data: PNG });
  });

  it('refuses: no icon, an unknown extension, a file that is not the image it claims, a link to a secret, too large', async () => {
    await assert.rejects(readAppIcon(app(undefined)), notFound);
    const text = join(dir, 'a.txt');
    writeFileSync(text, 'hello');
    await assert.rejects(readAppIcon(app(text)), notFound);
    const secret = join(dir, 'id_ed25519');
    writeFileSync(secret, '-----BEGIN OPENSSH PRIVATE KEY-----\n');
    const link = join(dir, 'evil.png');
    symlinkSync(secret, link);
    await assert.rejects(readAppIcon(app(link)), notFound);
    const big = join(dir, 'big.png');
    writeFileSync(big, Buffer.concat([PNG, Buffer.alloc(MAX_ICON_BYTES)]));
    await assert.rejects(readAppIcon(app(big)), notFound);
    await assert.rejects(readAppIcon(app(join(dir, 'missing.png'))), notFound);
  });
});

describe('resolveWithFallback', () => {
  const FPR = `SHA256:${'A'.repeat(43)}`;
  const notInPool = (): never => { throw new EbpError('NOT_FOUND', 'no peer'); };

  it('uses the pool when it knows the peer, the address with the key enforced when it does not', () => {
    const pooled = { host: '198.18.0.9', port: 1, expectedFingerprint: FPR };
    assert.deepEqual(resolveWithFallback(FPR, '198.18.0.5:20101', () => pooled), pooled);
    assert.deepEqual(resolveWithFallback(FPR, '198.18.0.5:20101', notInPool), { host: '198.18.0.5', port: 20101, expectedFingerprint: FPR });
    assert.throws(() => resolveWithFallback(FPR, undefined, notInPool), notFound);
  });

  it('never falls back past an impostor or an ambiguity, and needs a full fingerprint', () => {
    const impostor = (): never => { throw new EbpError('HOST_KEY_CHANGED', 'impostor'); };
    assert.throws(() => resolveWithFallback(FPR, '198.18.0.5:20101', impostor), (e: unknown) => e instanceof EbpError && e.code === 'HOST_KEY_CHANGED');
    assert.throws(() => addressTarget('alice-laptop', '198.18.0.5:20101'), (e: unknown) => e instanceof EbpError && e.code === 'USAGE');
    assert.throws(() => addressTarget('SHA256:AAAA', '198.18.0.5:20101'), (e: unknown) => e instanceof EbpError && e.code === 'USAGE');
  });
});
