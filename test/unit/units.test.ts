import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSize, parseDuration, parseSize } from '../../src/lib/units.js';

test('sizes are binary units', () => {
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('4K'), 4096);
  assert.equal(parseSize('256M'), 256 * 1024 ** 2);
  assert.equal(parseSize('1.5GiB'), 1.5 * 1024 ** 3);
  assert.equal(formatSize(64 * 1024 ** 2), '64.0 MiB');
});

test('bad sizes name the value and the fix', () => {
  for (const text of ['', 'lots', '-1M', '0', '12Q', '1e9']) {
    assert.throws(() => parseSize(text, 'memory limit'), /memory limit/);
  }
});

test('durations default to seconds', () => {
  assert.equal(parseDuration('10'), 10_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('1.5m'), 90_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.throws(() => parseDuration('soon'));
  assert.throws(() => parseDuration('0s'));
});
