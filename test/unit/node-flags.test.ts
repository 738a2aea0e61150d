// The daemon's Node options (daemon/node-flags.ts) reach it where ebp starts it: `npm start`
// (scripts/bootstrap.mjs) and the systemd unit carry them; bin/ebp's first line does not (it
// would cost every short command Node's code cache of its own modules).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { DAEMON_NODE_FLAGS, missingNodeFlags } from '../../src/daemon/node-flags.js';
import { systemdUnit } from '../../src/setup/service.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

test('bin/ebp starts plain Node', () => {
  assert.equal(readFileSync(join(root, 'bin', 'ebp'), 'utf8').split('\n')[0], '#!/usr/bin/env node');
});

test('npm start passes the same options', () => {
  const bootstrap = readFileSync(join(root, 'scripts', 'bootstrap.mjs'), 'utf8');
  const declared = /const DAEMON_NODE_FLAGS = (\[[^\]]*\]);/.exec(bootstrap)?.[1];
  assert.ok(declared !== undefined, 'bootstrap.mjs declares DAEMON_NODE_FLAGS');
  assert.deepEqual(JSON.parse(declared.replaceAll('\'', '"')), DAEMON_NODE_FLAGS);
});

test('the systemd unit puts them between node and the script', () => {
  const unit = systemdUnit({ kind: 'user', ebpCommand: ['/usr/bin/node', '/opt/ebp/bin/ebp'] });
  assert.match(unit, new RegExp(`^ExecStart=/usr/bin/node ${DAEMON_NODE_FLAGS.join(' ')} /opt/ebp/bin/ebp up$`, 'm'));
});

test('missingNodeFlags names what a process was started without', () => {
  assert.deepEqual(missingNodeFlags([...DAEMON_NODE_FLAGS, '--enable-source-maps']), []);
  assert.deepEqual(missingNodeFlags([]), [...DAEMON_NODE_FLAGS]);
});
