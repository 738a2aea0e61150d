// The web page's gatekeeping rules: Host names, origins, cookies and token comparison.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cookieValue, hostAllowed, originAllowed, tokenMatches } from '../../src/web/guard.js';

test('only loopback names with our port pass the Host check', () => {
  assert.ok(hostAllowed('127.0.0.1:8080', 8080));
  assert.ok(hostAllowed('LOCALHOST:8080', 8080));
  assert.ok(hostAllowed('[::1]:8080', 8080));
  for (const host of [undefined, '', '127.0.0.1', '127.0.0.1:8081', 'evil.example:8080', 'localhost.evil.example:8080', '127.0.0.2:8080', '0.0.0.0:8080', '[::ffff:127.0.0.1]:8080']) {
    assert.equal(hostAllowed(host, 8080), false, String(host));
  }
});

test('state changes need the page\'s own origin', () => {
  assert.ok(originAllowed({ origin: 'http://127.0.0.1:9' }, 9).ok);
  assert.ok(originAllowed({ origin: 'http://localhost:9', secFetchSite: 'same-origin' }, 9).ok);
  assert.ok(originAllowed({ secFetchSite: 'same-origin' }, 9).ok);
  for (const headers of [{}, { origin: 'null' }, { origin: 'http://127.0.0.1:10' }, { origin: 'https://127.0.0.1:9' }, { origin: 'http://evil.example' },
    { secFetchSite: 'cross-site' }, { secFetchSite: 'same-site', origin: 'http://127.0.0.1:9' }]) {
    assert.equal(originAllowed(headers, 9).ok, false, JSON.stringify(headers));
  }
});

test('cookies and tokens', () => {
  assert.equal(cookieValue('a=1; ebp_ui_9=tok; b=2', 'ebp_ui_9'), 'tok');
  assert.equal(cookieValue('xebp_ui_9=tok', 'ebp_ui_9'), undefined);
  assert.equal(cookieValue(undefined, 'ebp_ui_9'), undefined);
  assert.ok(tokenMatches('abc', 'abc'));
  assert.equal(tokenMatches('abd', 'abc'), false);
  assert.equal(tokenMatches('ab', 'abc'), false);
  assert.equal(tokenMatches(undefined, 'abc'), false);
});
