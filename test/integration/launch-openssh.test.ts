// The daemon with the real OpenSSH client: a key made by ssh-keygen and trusted with
// `ebp trust --key file.pub` runs apps with `ssh -p PORT anyname@127.0.0.1 APP ARGS`; with -tt the
// app gets a terminal of the client's size; `ebp:apps` answers JSON; passwords are not accepted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { captured, IS_ROOT, setupOnce, type Captured } from './helpers/ebp.js';
import { ebpOk, hostConfig, inTerminal, poolCleanup, startDaemon, tempDir, type PoolDaemon } from './helpers/pool.js';

const execFileAsync = promisify(execFile);
const SSH = ['/usr/bin/ssh', '/usr/local/bin/ssh'].find((path) => existsSync(path));
const KEYGEN = ['/usr/bin/ssh-keygen', '/usr/local/bin/ssh-keygen'].find((path) => existsSync(path));
const SKIP = !IS_ROOT ? 'needs root (sandboxes run as the ebp-sandbox user)' : SSH === undefined || KEYGEN === undefined ? 'OpenSSH client not installed' : false;

let host: PoolDaemon;
let key: string;

function sshArgs(extra: readonly string[] = []): string[] {
  return [
    '-F', '/dev/null', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10', '-p', String(host.port), ...extra, 'anyname@127.0.0.1',
  ];
}

async function ssh(args: readonly string[], extra: readonly string[] = []): Promise<Captured> {
  return captured(SSH ?? 'ssh', [...sshArgs(extra), ...args]);
}

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  host = await startDaemon({ label: 'A', config: hostConfig({ name: 'alpha', policy: 'trusted-only' }) });
  const dir = tempDir('ssh');
  key = join(dir, 'id_test');
  await execFileAsync(KEYGEN ?? 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'openssh-test', '-f', key]);
  await ebpOk(host.stateDir, ['trust', '--key', `${key}.pub`]);
});
after(poolCleanup);

describe('OpenSSH client', { skip: SKIP }, () => {
  test('`ssh -p PORT anyname@127.0.0.1 echo hello` prints hello', { timeout: 60_000 }, async () => {
    const result = await ssh(['echo', 'hello']);
    assert.equal(result.stdout, 'hello\n', result.stderr);
    assert.equal(result.code, 0, result.stderr);
  });

  test('exit statuses come back through ssh', { timeout: 60_000 }, async () => {
    assert.equal((await ssh(['sh', '-c', "'exit 9'"])).code, 9);
  });

  test('the remote command is split into words but never given to a shell', { timeout: 60_000 }, async () => {
    const result = await ssh(['argv', "'$(id)'", '`uname`', ';id', '"a b"', '$HOME', '&&', 'x|y']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), ['$(id)', '`uname`', ';id', 'a b', '$HOME', '&&', 'x|y']);
  });

  test('`ssh ... ebp:apps` prints the catalogue as JSON', { timeout: 60_000 }, async () => {
    const result = await ssh(['ebp:apps']);
    assert.equal(result.code, 0, result.stderr);
    const view = JSON.parse(result.stdout) as { version: string; apps: { id: string; name: string; terminal: boolean }[] };
    assert.equal(typeof view.version, 'string');
    const ids = view.apps.map((app) => app.id);
    for (const id of ['echo', 'sh', 'cat', 'argv']) assert.ok(ids.includes(id), `${id} in ${ids.join(', ')}`);
    assert.equal(view.apps.find((app) => app.id === 'sh')?.terminal, true);
  });

  test('with -tt and a terminal, the app sees the terminal\'s size', { timeout: 60_000 }, async () => {
    const { screen, exit } = await inTerminal(
      [SSH ?? 'ssh', '-tt', ...sshArgs(), 'sh'],
      [
        ['$ ', 'stty size; echo T=$TERM\\r'],
        ['T=xterm', '@resize 40 100'],
        ['T=xterm', 'sleep 1; stty size\\r'],
        ['40 100', 'exit 3\\r'],
      ],
      { rows: 27, cols: 77 },
    );
    assert.match(screen, /27 77/, screen);
    assert.match(screen, /T=xterm-256color/, screen);
    assert.match(screen, /40 100/, `a resize reaches the app\n${screen}`);
    assert.equal(exit, 3, screen);
  });

  test('an unshared app is refused with its name', { timeout: 60_000 }, async () => {
    const result = await ssh(['--', '--bind', '/', '/', 'sh']);
    assert.match(result.stderr, /"--bind" is not an app this machine shares/, result.stderr);
    assert.equal(result.stdout, '');
    assert.notEqual(result.code, 0);
  });

  test('ssh without a command gets a hint, not a shell', { timeout: 60_000 }, async () => {
    const result = await ssh([], ['-T']);
    assert.match(result.stderr, /eBrainPool host/);
    assert.equal(result.code, 2);
  });

  test('a key that is not trusted is refused (trusted-only); passwords are never asked', { timeout: 60_000 }, async () => {
    const dir = tempDir('ssh-other');
    const other = join(dir, 'id_other');
    await execFileAsync(KEYGEN ?? 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const savedKey = key;
    key = other;
    try {
      const untrusted = await ssh(['echo', 'no']);
      assert.equal(untrusted.stdout, '');
      assert.match(untrusted.stderr, /ebp trust/, untrusted.stderr);
      assert.notEqual(untrusted.code, 0);
      const password = await ssh(['echo', 'no'], ['-o', 'PreferredAuthentications=password,keyboard-interactive', '-o', 'PubkeyAuthentication=no']);
      assert.equal(password.code, 255);
      assert.match(password.stderr, /Permission denied \(publickey\)/, password.stderr);
    } finally {
      key = savedKey;
    }
  });
});
