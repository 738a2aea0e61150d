// The systemd units for the daemon: their text, ExecStart quoting for odd install paths, and
// `systemd-analyze verify` (offline: it parses the unit and checks ExecStart's program) passing
// without a single warning; a broken unit must fail the same check. Installing a user unit where
// systemd does not run writes the file and returns the commands to run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { installService, quoteUnitWord, serviceCommands, systemdRunning, systemdUnit, unitPath, type ServiceKind } from '../../src/setup/service.js';
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js';

const EBP_SCRIPT = resolve('bin/ebp');
const COMMAND = [process.execPath, EBP_SCRIPT];
const scratch = mkdtempSync(join(tmpdir(), 'ebp-unit-'));
after(() => { rmSync(scratch, { recursive: true, force: true }); });
const HAVE_ANALYZE = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;

/** systemd-analyze verify's complaints ('' when none). */
function verify(kind: ServiceKind, unit: string): string {
  const dir = mkdtempSync(join(scratch, 'v-'));
  const file = join(dir, 'ebp.service');
  writeFileSync(file, unit);
  const runtime = join(dir, 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  // The user manager needs a runtime folder even offline.
  const env = { ...process.env, XDG_RUNTIME_DIR: runtime, SYSTEMD_LOG_COLOR: '0' };
  const result = spawnSync('systemd-analyze', [...(kind === 'user' ? ['--user'] : []), 'verify', file], { encoding: 'utf8', env });
  const output = `${result.stdout}${result.stderr}`.trim();
  return result.status === 0 && output === '' ? '' : `status ${String(result.status)}: ${output}`;
}

describe('systemdUnit', () => {
  it('system: the daemon as the unprivileged user ebp, delegated cgroup, the root daemon\'s folders, clean stop', () => {
    const unit = systemdUnit({ kind: 'system', ebpCommand: COMMAND });
    for (const line of ['User=ebp', 'Group=ebp', 'Delegate=yes', 'KillMode=mixed', 'StateDirectory=ebp', 'RuntimeDirectory=ebp', 'ConfigurationDirectory=ebp', 'WantedBy=multi-user.target', `ExecStart=${process.execPath} ${DAEMON_NODE_FLAGS.join(' ')} ${EBP_SCRIPT} up`]) {
      assert.ok(unit.split('\n').includes(line), `${line}\n${unit}`);
    }
    assert.match(unit, /^Environment=.*XDG_STATE_HOME=\/var\/lib .*XDG_RUNTIME_DIR=\/run$/m);
  });

  it('user: no User=, enabled for the user\'s default target', () => {
    const unit = systemdUnit({ kind: 'user', ebpCommand: COMMAND });
    assert.doesNotMatch(unit, /^User=/m);
    assert.match(unit, /^Delegate=yes$/m);
    assert.match(unit, /^WantedBy=default\.target$/m);
  });

  it('refuses relative programs and control characters', () => {
    assert.throws(() => systemdUnit({ kind: 'user', ebpCommand: ['node', 'ebp'] }));
    assert.throws(() => systemdUnit({ kind: 'user', ebpCommand: ['/usr/bin/node', '/x\n[Service]'] }));
  });

  it('quotes ExecStart words: spaces, quotes, backslashes; % and $ stay literal', () => {
    assert.equal(quoteUnitWord('/opt/ebp/bin/ebp'), '/opt/ebp/bin/ebp');
    assert.equal(quoteUnitWord('/opt/my ebp/x'), '"/opt/my ebp/x"');
    assert.equal(quoteUnitWord('/a/%h/$HOME'), '"/a/%%h/$$HOME"');
    assert.equal(quoteUnitWord('/a"b\\c'), '"/a\\"b\\\\c"');
  });
});

describe('systemd-analyze verify', { skip: HAVE_ANALYZE ? false : 'systemd-analyze is not installed' }, () => {
  it('both units pass without a warning', () => {
    for (const kind of ['system', 'user'] as const) {
      assert.equal(verify(kind, systemdUnit({ kind, ebpCommand: COMMAND })), '', kind);
    }
  });

  it('an install path with spaces, %, $ and quotes passes too', () => {
    const odd = join(scratch, 'my "ebp" %h $HOME', 'bin', 'ebp');
    for (const kind of ['system', 'user'] as const) {
      assert.equal(verify(kind, systemdUnit({ kind, ebpCommand: [process.execPath, odd] })), '', kind);
    }
  });

  it('the check can fail: a missing program, a bad directive', () => {
    const unit = systemdUnit({ kind: 'system', ebpCommand: COMMAND });
    assert.notEqual(verify('system', unit.replace(`ExecStart=${process.execPath}`, 'ExecStart=/nonexistent/node')), '');
    assert.notEqual(verify('system', unit.replace('KillMode=mixed', 'KillMode=sometimes')), '');
  });
});

describe('installService', () => {
  it('--user where systemd does not run: writes the unit under XDG_CONFIG_HOME and says what to run', { skip: systemdRunning('user') ? 'a user systemd runs here: it would enable the unit' : false }, async () => {
    const config = join(scratch, 'config');
    const env = { ...process.env, XDG_CONFIG_HOME: config, XDG_RUNTIME_DIR: join(scratch, 'no-runtime') };
    const report = await installService({ kind: 'user', ebpCommand: COMMAND, env });
    assert.equal(report.unitFile, join(config, 'systemd', 'user', 'ebp.service'));
    assert.equal(unitPath('user', env), report.unitFile);
    assert.equal(readFileSync(report.unitFile, 'utf8'), systemdUnit({ kind: 'user', ebpCommand: COMMAND }));
    assert.equal(report.enabled, false);
    assert.deepEqual(report.todo, ['systemctl --user daemon-reload', 'systemctl --user enable --now ebp.service']);
    assert.equal(report.logs, 'journalctl --user -u ebp.service -f');
    assert.deepEqual(serviceCommands('system').enable, [['systemctl', 'daemon-reload'], ['systemctl', 'enable', '--now', 'ebp.service']]);
  });
});
