// How a menu launcher reports an error: the first tool the session can use (notify-send with a
// session bus, zenity or xmessage on a display), the message as one argument with the peer's
// markup neutralised, else a line in the log file.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { notifier, notifyError } from '../../src/launchers/notify.js';

const dir = mkdtempSync(join(tmpdir(), 'ebp-notify-'));
after(() => { rmSync(dir, { recursive: true, force: true }); });

/** A PATH folder holding (never run) programs with these names. */
function pathWith(names: readonly string[]): string {
  const bin = join(dir, `bin-${names.join('-') || 'none'}`);
  mkdirSync(bin, { recursive: true });
  for (const name of names) {
    writeFileSync(join(bin, name), '#!/bin/sh\nexit 0\n');
    chmodSync(join(bin, name), 0o755);
  }
  return bin;
}

describe('notifier', () => {
  const ALL = ['notify-send', 'zenity', 'xmessage'];

  it('prefers notify-send with a session bus; the peer\'s markup stays text; control characters go', () => {
    const chosen = notifier('ebp: x', 'peer says <img src="file:///etc/passwd"> & \u001b[31m-rf', { PATH: pathWith(ALL), DBUS_SESSION_BUS_ADDRESS: 'unix:path=/x', DISPLAY: ':9' });
    assert.equal(chosen?.tool, 'notify-send');
    assert.deepEqual(chosen.argv.slice(1), ['--app-name=ebp', '--urgency=critical', '--', 'ebp: x', 'peer says &lt;img src="file:///etc/passwd"&gt; &amp;  [31m-rf']);
  });

  it('on a display without a bus: zenity without markup, else xmessage; nothing without a display', () => {
    assert.equal(notifier('t', 'm', { PATH: pathWith(ALL), DISPLAY: ':9' })?.tool, 'zenity');
    assert.deepEqual(notifier('t', '-m', { PATH: pathWith(['xmessage']), DISPLAY: ':9' })?.argv.slice(1), ['-center', '-title', 't', 't\n\n-m']);
    assert.equal(notifier('t', 'm', { PATH: pathWith(ALL) }), undefined);
    assert.equal(notifier('t', 'm', { PATH: pathWith([]), DISPLAY: ':9', DBUS_SESSION_BUS_ADDRESS: 'x' }), undefined);
  });

  it('with nothing to show it, the error goes to the log file, one line each', async () => {
    const log = join(dir, 'state', 'launcher-errors.log');
    const outcome = await notifyError('ebp: cannot start the app', 'cannot reach 198.18.0.5:20101\nfix: start it', { env: { PATH: pathWith([]) }, logFile: log });
    assert.deepEqual(outcome, { kind: 'logged', file: log });
    await notifyError('ebp: t', 'second', { env: { PATH: pathWith([]) }, logFile: log });
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? '', /^\S+ ebp: cannot start the app: cannot reach 198\.18\.0\.5:20101 fix: start it$/);
  });
});
