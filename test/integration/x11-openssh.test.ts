// X11 forwarding with the real OpenSSH client against the daemon: `ssh -X` (untrusted, OpenSSH
// makes the cookie with xauth) shows the app's window on the person's Xvfb and ends with it; the
// app cannot capture the screen; `ssh -Y` (trusted) can, which shows the refusal is the cookie's.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { captured, IS_ROOT, setupOnce, type Captured } from './helpers/ebp.js';
import { ebpOk, hostConfig, poolCleanup, startDaemon, tempDir, tempRoot, waitUntil, type PoolDaemon } from './helpers/pool.js';
import { startXvfb, windowsNamed, X11_MISSING, xdotool, type Xvfb } from './helpers/xvfb.js';

const execFileAsync = promisify(execFile);
const SSH = ['/usr/bin/ssh', '/usr/local/bin/ssh'].find((path) => existsSync(path));
const KEYGEN = ['/usr/bin/ssh-keygen', '/usr/local/bin/ssh-keygen'].find((path) => existsSync(path));
const SKIP = !IS_ROOT ? 'needs root (sandboxes run as the ebp-sandbox user)'
  : SSH === undefined || KEYGEN === undefined ? 'OpenSSH client not installed'
    : X11_MISSING.length > 0 ? `missing ${X11_MISSING.join(', ')}` : false;

let x: Xvfb;
let host: PoolDaemon;
let key: string;

function sshArgs(forward: '-X' | '-Y', command: readonly string[]): string[] {
  return [
    '-F', '/dev/null', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10', '-o', 'XAuthLocation=/usr/bin/xauth',
    forward, '-o', `ForwardX11Trusted=${forward === '-Y' ? 'yes' : 'no'}`, '-p', String(host.port), 'anyname@127.0.0.1', ...command,
  ];
}

async function ssh(forward: '-X' | '-Y', command: readonly string[]): Promise<Captured> {
  return captured(SSH ?? 'ssh', sshArgs(forward, command), { env: { ...process.env, ...x.env } });
}

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  chmodSync(tempRoot(), 0o711);
  x = await startXvfb();
  host = await startDaemon({
    label: 'A',
    config: hostConfig({ name: 'alpha', policy: 'trusted-only', apps: [{ id: 'xeyes', name: 'xeyes', exec: 'xeyes' }, { id: 'sh', name: 'Shell', exec: 'sh' }] }),
  });
  key = join(tempDir('ssh'), 'id_test');
  await execFileAsync(KEYGEN ?? 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'openssh-x11-test', '-f', key]);
  await ebpOk(host.stateDir, ['trust', '--key', `${key}.pub`]);
});
after(async () => {
  await poolCleanup();
  if (SKIP === false) await x.stop();
});

describe('OpenSSH ssh -X', { skip: SKIP }, () => {
  test('`ssh -X -p PORT HOST xeyes` shows the window; closing it ends ssh', { timeout: 60_000 }, async () => {
    const name = `ebp-ssh-${process.pid}`;
    const child = spawn(SSH ?? 'ssh', sshArgs('-X', ['xeyes', '-title', name]), { env: { ...process.env, ...x.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const closed = new Promise<number | null>((resolve) => child.once('close', (code) => { resolve(code); }));
    try {
      const window = await waitUntil(async () => (await windowsNamed(x, name))[0], 20_000, `the xeyes window (ssh said: ${stderr})`, 100);
      await xdotool(x, ['windowkill', window]);
      const code = await Promise.race([closed, delay(15_000).then(() => 'still running' as const)]);
      assert.notEqual(code, 'still running', `ssh ended with the app\n${stderr}`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('untrusted by default: the app sees DISPLAY=:0 but cannot capture the screen; -Y can', { timeout: 60_000 }, async () => {
    const untrusted = await ssh('-X', ['sh', '-c', "'echo D=$DISPLAY; xwd -root -silent | wc -c'"]);
    assert.match(untrusted.stdout, /^D=:0\n0\n$/, `${untrusted.stdout}\n${untrusted.stderr}`);
    assert.match(untrusted.stderr, /unable to get image/);
    const trusted = await ssh('-Y', ['sh', '-c', "'xwd -root -silent | wc -c'"]);
    assert.ok(Number(trusted.stdout.trim()) > 1024 * 768 * 3, `${trusted.stdout}\n${trusted.stderr}`);
  });
});
