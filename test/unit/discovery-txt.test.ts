// TXT data and names: strict validation of our fields, RFC 6763 §6 key rules, display sanitizing,
// conflict renaming, host labels, the same-identity check.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { sameIdentityConflict, type DiscoveredPeer } from '../../src/discovery/cache.js';
import { EbpError } from '../../src/lib/errors.js';
import { checkInstanceName, displayInstance, hostLabelBase, nameKey, numberedInstance, truncateUtf8 } from '../../src/discovery/names.js';
import { encodePeerTxt, parseTxt, peerTxtProblem, type PeerTxt } from '../../src/discovery/txt.js';

const ID = `SHA256:${'a'.repeat(42)}Z`;
const GOOD: PeerTxt = { v: '1', id: ID, apps: 12, cat: '0123456789abcdef', load: '2/32' };
const strings = (...items: string[]): Buffer[] => items.map((item) => Buffer.from(item, 'utf8'));

describe('discovery TXT', () => {
  it('encodes our fields and parses them back as verified', () => {
    const parsed = parseTxt(encodePeerTxt(GOOD));
    assert.equal(parsed.verified, true);
    assert.deepEqual({ ...parsed.fields }, GOOD);
    assert.equal(parsed.raw['load'], '2/32');
  });

  it('refuses to announce invalid fields', () => {
    for (const bad of [
      { ...GOOD, v: 'x' },
      { ...GOOD, id: 'SHA256:short' },
      { ...GOOD, id: `MD5:${'a'.repeat(43)}` },
      { ...GOOD, apps: -1 },
      { ...GOOD, apps: 100_001 },
      { ...GOOD, apps: 1.5 },
      { ...GOOD, cat: 'ABC' },
      { ...GOOD, load: '2-32' },
    ]) {
      assert.notEqual(peerTxtProblem(bad), undefined, JSON.stringify(bad));
      assert.throws(() => encodePeerTxt(bad), (error: unknown) => error instanceof EbpError && error.code === 'CONFIG_INVALID');
    }
  });

  it('drops invalid fields (unverified) and keeps the rest', () => {
    const parsed = parseTxt(strings('v=1', `id=${ID}x`, 'apps=100001', 'cat=00ff', 'load=1/2'));
    assert.equal(parsed.verified, false);
    assert.deepEqual({ ...parsed.fields }, { v: '1', cat: '00ff', load: '1/2' });
    assert.equal(parsed.raw['apps'], '100001');
  });

  it('follows RFC 6763 §6.4: first occurrence wins, keys case-insensitive, boolean keys, no empty keys', () => {
    const parsed = parseTxt(strings('V=1', 'v=2', 'flag', '=nokey', 'k=a=b', ''));
    assert.equal(parsed.raw['v'], '1');
    assert.equal(parsed.raw['flag'], '');
    assert.equal(parsed.raw['k'], 'a=b');
    assert.equal(Object.keys(parsed.raw).length, 3);
  });

  it('is safe against prototype keys, bad UTF-8, control characters and oversized records', () => {
    const parsed = parseTxt([Buffer.from('__proto__=x'), Buffer.from('constructor=y'), Buffer.from([0x62, 0x3d, 0xff, 0xfe]), Buffer.from('c=\u001b[31mred')]);
    assert.equal(Object.getPrototypeOf(parsed.raw), null);
    assert.equal(parsed.raw['__proto__'], 'x');
    assert.equal(parsed.raw['b'], undefined);
    assert.equal(parsed.raw['c'], '\ufffd[31mred');
    assert.equal(({} as Record<string, unknown>)['x'], undefined);
    const huge = parseTxt(Array.from({ length: 10 }, (_, i) => Buffer.alloc(200, 0x61 + i)));
    assert.deepEqual(Object.keys(huge.raw), []);
    assert.equal(huge.verified, false);
    const keyWithControl = parseTxt([Buffer.from([0x01, 0x3d, 0x61])]);
    assert.deepEqual(Object.keys(keyWithControl.raw), []);
  });
});

describe('discovery names', () => {
  it('checks our instance name', () => {
    assert.equal(checkInstanceName('  Alice  '), 'Alice');
    assert.throws(() => checkInstanceName(''), EbpError);
    assert.throws(() => checkInstanceName('a\u0007b'), EbpError);
    assert.throws(() => checkInstanceName('é'.repeat(32)), EbpError);
    assert.equal(checkInstanceName('é'.repeat(31)), 'é'.repeat(31));
  });

  it('numbers names after conflicts and keeps them within 63 bytes', () => {
    assert.equal(numberedInstance('name', 1), 'name');
    assert.equal(numberedInstance('name', 2), 'name (2)');
    const long = numberedInstance('ü'.repeat(31), 12);
    assert.ok(Buffer.byteLength(long) <= 63);
    assert.ok(long.endsWith(' (12)'));
    assert.equal(truncateUtf8('aü', 2), 'a');
  });

  it('sanitizes received names for display', () => {
    assert.equal(displayInstance('evil\u202eexe.txt\u0000'), 'evil\ufffdexe.txt\ufffd');
    assert.ok(Buffer.byteLength(displayInstance('\u0001'.repeat(63))) <= 63);
  });

  it('derives distinct host labels per daemon', () => {
    const a = hostLabelBase('Alice Laptop', 'box', 22);
    assert.match(a, /^alice-laptop-[0-9a-f]{6}$/);
    assert.notEqual(a, hostLabelBase('Alice Laptop', 'box', 2222));
    assert.match(hostLabelBase('日本', 'box', 22), /^ebp-[0-9a-f]{6}$/);
  });

  it('compares names case-insensitively for ASCII only and keeps dots inside labels apart', () => {
    assert.equal(nameKey(['ABC', 'local']), nameKey(['abc', 'LOCAL']));
    assert.notEqual(nameKey(['Ä']), nameKey(['ä']));
    assert.notEqual(nameKey(['a.b', 'local']), nameKey(['a', 'b', 'local']));
  });
});

describe('sameIdentityConflict', () => {
  const peer = (instance: string, link: string, id: string | undefined): DiscoveredPeer => ({
    key: `${instance.toLowerCase()}@${link}`,
    instance,
    host: 'h.local',
    addresses: ['198.18.0.1'],
    port: 22,
    txt: { ...(id === undefined ? {} : { id }), raw: {} },
    verified: id !== undefined,
    interfaces: [link],
    lastSeen: 0,
  });

  it('flags both of two instances claiming the same id, not one instance seen on two links', () => {
    const a = peer('A', 'eth0', ID);
    const aOther = peer('A', 'eth1', ID);
    const b = peer('B', 'eth0', ID);
    const c = peer('C', 'eth0', `SHA256:${'b'.repeat(43)}`);
    const d = peer('D', 'eth0', undefined);
    assert.deepEqual(sameIdentityConflict([a, aOther, c, d]), []);
    const flagged = sameIdentityConflict([a, aOther, b, c, d]);
    assert.deepEqual(flagged.map((p) => p.key).sort(), ['a@eth0', 'a@eth1', 'b@eth0']);
  });
});
