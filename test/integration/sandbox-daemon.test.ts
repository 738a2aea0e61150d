// `ebp sandbox` while the daemon runs: the daemon sets the sandbox up (it holds the engine), and
// the result is the same sandbox: exit statuses, messages, pipes, shares, terminal.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const ebp = `${root}bin/ebp`;
const state = mkdtempSync(join(tmpdir(), 'ebp-sbd-'));
let daemon: ChildProcess | undefined;

async function sandbox(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [ebp, '--state-dir', state, 'sandbox', ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
}

before(async () => {
  if (process.getuid?.() === 0) await run(process.execPath, [ebp, 'setup']);
  daemon = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ebp, '--state-dir', state, 'up', '--no-discovery', '--listen', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    daemon?.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('sharing')) resolve();
    });
    daemon?.once('exit', (code) => { reject(new Error(`daemon exited ${String(code)}`)); });
  });
});

after(async () => {
  daemon?.kill('SIGTERM');
  await new Promise((resolve) => daemon?.once('exit', resolve));
});

test('through the daemon: the command\'s exit status, its output and stdin', { timeout: 60_000 }, async () => {
  const result = await sandbox(['--', 'sh', '-c', 'cat; echo out; echo err >&2; exit 3'], 'from stdin\n');
  assert.deepEqual(result, { code: 3, stdout: 'from stdin\nout\n', stderr: 'err\n' });
  const logs = await sandbox(['--', 'sh', '-c', 'cat /proc/self/cgroup | grep -c "::/$"']);
  assert.equal(logs.stdout.trim(), '1', 'the same sandbox: its own cgroup namespace');
});

test('through the daemon: OOM, timeout and not-found report as in-process runs do', { timeout: 60_000 }, async () => {
  const oom = await sandbox(['--memory', '64M', '--', 'python3', '-c', 'a = bytearray(300 * 1024 * 1024)']);
  assert.equal(oom.code, 137);
  assert.match(oom.stderr, /out of memory.*64\.0 MiB/);
  // The limit killed one of the command's processes, not the command: its own status stands.
  const survived = await sandbox(['--memory', '64M', '--', 'sh', '-c', 'python3 -c "a = bytearray(300 * 1024 * 1024)"; echo "after $?"']);
  assert.deepEqual([survived.code, survived.stdout], [0, 'after 137\n'], survived.stderr);
  assert.doesNotMatch(survived.stderr, /out of memory/);
  const slow = await sandbox(['--timeout', '1s', '--', 'sleep', '10']);
  assert.equal(slow.code, 124);
  assert.match(slow.stderr, /timed out/);
  assert.equal((await sandbox(['--', 'no-such-program'])).code, 127);
});

test('through the daemon: a share, read-only enforced', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-sbd-share-'));
  // As root, sandboxes run as the unprivileged ebp-sandbox user: it must be able to read it.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'note'), 'shared text\n');
  const read = await sandbox(['--share', `${dir}:/mnt/data:ro`, '--', 'sh', '-c', 'cat /mnt/data/note; echo x > /mnt/data/new']);
  assert.equal(read.stdout, 'shared text\n');
  assert.notEqual(read.code, 0);
  assert.match(read.stderr, /Read-only file system/);
});

test('--no-daemon runs the same sandbox in the calling process', { timeout: 60_000 }, async () => {
  const result = await sandbox(['--no-daemon', '--', 'sh', '-c', 'exit 5']);
  assert.equal(result.code, 5);
});
