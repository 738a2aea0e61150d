// Icon lookup against the fake data dirs in test/data/catalog.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createIconResolver, resolveIcon } from '../../src/catalog/icons.js';

const DATA = fileURLToPath(new URL('../../../test/data/catalog/', import.meta.url));
const SHARE1 = `${DATA}share1`;
const SHARE2 = `${DATA}share2`;

describe('resolveIcon in a bare hicolor tree (no index.theme)', () => {
  const options = { dataDirs: [SHARE1] };

  it('prefers the exact size, then scalable, then the closest size', () => {
    assert.equal(resolveIcon('calc-icon', options), `${SHARE1}/icons/hicolor/48x48/apps/calc-icon.png`);
    assert.equal(resolveIcon('calc-icon', { ...options, size: 16 }), `${SHARE1}/icons/hicolor/scalable/apps/calc-icon.svg`);
    assert.equal(resolveIcon('foo-icon', options), `${SHARE1}/icons/hicolor/scalable/apps/foo-icon.svg`);
    assert.equal(resolveIcon('small-only', options), `${SHARE1}/icons/hicolor/16x16/apps/small-only.png`);
  });

  it('falls back to pixmaps, and drops an extension written in the name', () => {
    assert.equal(resolveIcon('pix-icon', options), `${SHARE1}/pixmaps/pix-icon.xpm`);
    assert.equal(resolveIcon('calc-icon.png', options), `${SHARE1}/icons/hicolor/48x48/apps/calc-icon.png`);
    assert.equal(resolveIcon('no-such-icon', options), undefined);
  });

  it('refuses names that are paths', () => {
    for (const name of ['', '../share1/pixmaps/pix-icon', 'apps/calc-icon', 'a..b', 'x\0y', '.', '..']) {
      assert.equal(resolveIcon(name, options), undefined, JSON.stringify(name));
    }
  });

  it('uses an absolute path as is when it is an existing image file', () => {
    const png = `${SHARE1}/icons/hicolor/48x48/apps/calc-icon.png`;
    assert.equal(resolveIcon(png, options), png);
    assert.equal(resolveIcon(`${SHARE1}/pixmaps/pix-icon.xpm`, options), `${SHARE1}/pixmaps/pix-icon.xpm`);
    assert.equal(resolveIcon('/nonexistent/icon.png', options), undefined);
    assert.equal(resolveIcon('/etc/passwd', options), undefined);
    assert.equal(resolveIcon(`${SHARE1}/icons/Fancy/index.theme`, options), undefined);
    assert.equal(resolveIcon(`${SHARE1}/icons/../icons/hicolor/48x48/apps/calc-icon.png`, options), undefined);
  });
});

describe('resolveIcon with index.theme', () => {
  it('reads the hicolor directories from the first data dir that has index.theme', () => {
    const options = { dataDirs: [SHARE1, SHARE2] };
    assert.equal(resolveIcon('calc-icon', options), `${SHARE1}/icons/hicolor/48x48/apps/calc-icon.png`);
    // Threshold 48 (46..50) misses; 64 is closer than 16.
    assert.equal(resolveIcon('only-64', options), `${SHARE2}/icons/hicolor/64x64/apps/only-64.png`);
    assert.equal(resolveIcon('only-64', { ...options, size: 64 }), `${SHARE2}/icons/hicolor/64x64/apps/only-64.png`);
    // Earlier data dirs win for the fallback too.
    assert.equal(resolveIcon('pix-icon', options), `${SHARE1}/pixmaps/pix-icon.xpm`);
    assert.equal(resolveIcon('pix-icon', { dataDirs: [SHARE2, SHARE1] }), `${SHARE2}/pixmaps/pix-icon.png`);
  });

  it('looks in the theme first, then what it inherits, then hicolor', () => {
    const options = { dataDirs: [SHARE1], theme: 'Fancy' };
    assert.equal(resolveIcon('calc-icon', { ...options, size: 32 }), `${SHARE1}/icons/Fancy/32x32/apps/calc-icon.png`);
    // As the spec says, the closest size in the theme beats an exact size in its parent.
    assert.equal(resolveIcon('calc-icon', options), `${SHARE1}/icons/Fancy/32x32/apps/calc-icon.png`);
    assert.equal(resolveIcon('fancy-only', { ...options, size: 128 }), `${SHARE1}/icons/Fancy/scalable/apps/fancy-only.svg`);
    assert.equal(resolveIcon('foo-icon', options), `${SHARE1}/icons/hicolor/scalable/apps/foo-icon.svg`);
    assert.equal(resolveIcon('fancy-only', { dataDirs: [SHARE1] }), undefined);
  });

  it('treats an unknown or unsafe theme name as hicolor', () => {
    assert.equal(resolveIcon('calc-icon', { dataDirs: [SHARE1], theme: 'NoSuchTheme' }), `${SHARE1}/icons/hicolor/48x48/apps/calc-icon.png`);
    assert.equal(resolveIcon('calc-icon', { dataDirs: [SHARE1], theme: '../..' }), `${SHARE1}/icons/hicolor/48x48/apps/calc-icon.png`);
  });

  it('a resolver answers many names with one set of options', () => {
    const resolve = createIconResolver({ dataDirs: [SHARE1, SHARE2], size: 48 });
    assert.deepEqual(['calc-icon', 'foo-icon', 'nothing'].map(resolve), [
      `${SHARE1}/icons/hicolor/48x48/apps/calc-icon.png`,
      `${SHARE1}/icons/hicolor/scalable/apps/foo-icon.svg`,
      undefined,
    ]);
  });
});
