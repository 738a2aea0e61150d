// The daemon's own display for "Open on this desktop": without one, or with one that is not
// usable, nothing is launched and the page is told why (the launches themselves run against a
// real Xvfb in test/integration/web-x11.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DesktopLaunches } from '../../src/daemon/desktop.js';
import { EbpError } from '../../src/lib/errors.js';

function desktop(display: string | undefined, launched: string[]): DesktopLaunches {
  return new DesktopLaunches({
    display,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', XAUTHORITY: '/nonexistent/Xauthority' },
    launch: async (peer, app) => {
      launched.push(`${peer} ${app}`);
      throw new Error('not reached');
    },
    onChange: () => undefined,
    log: () => undefined,
  });
}

test('without a display: no display in the view, and a launch is refused with the fix', async () => {
  const launched: string[] = [];
  const none = desktop(undefined, launched);
  assert.deepEqual(await none.check(), { kind: 'none' });
  assert.deepEqual(none.view(), { display: undefined, launches: [] });
  assert.throws(() => none.open('127.0.0.1:1', 'xeyes'), (error: unknown) => {
    assert.ok(error instanceof EbpError);
    assert.equal(error.code, 'DISPLAY_UNAVAILABLE');
    assert.match(error.message, /no display/);
    assert.match(error.hint ?? '', /DISPLAY/);
    return true;
  });
  assert.deepEqual(launched, []);
});

test('a display that is malformed or has no X server is unusable, with the reason', async () => {
  const launched: string[] = [];
  for (const display of ['::1:0', 'nonsense', ':59999']) {
    const bad = desktop(display, launched);
    const status = await bad.check();
    if (status.kind !== 'unusable') assert.fail(`${display}: ${status.kind}`);
    assert.ok(status.reason.length > 0);
    assert.equal(bad.view().display, undefined);
    assert.throws(() => bad.open('127.0.0.1:1', 'xeyes'), /not usable/);
  }
  assert.deepEqual(launched, []);
});
