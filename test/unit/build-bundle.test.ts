// scripts/bundle.mjs while ebp runs: a rebuild (`npm start` or `npm run build` again, an update)
// must not pull the native code out from under a running daemon. The bundle's native bindings
// are files next to it that the daemon has mapped; written over in place, the daemon crashed
// with SIGSEGV at its next SSH packet. And the run command's own bundle: without the SSH library,
// which it loads from a bundle of its own when a launch dials the peer itself.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dist = join(root, 'dist');

/** A process that has ssh2's binding loaded, uses it once, then again when told to. */
const USER = `
const binding = require(process.argv[1]);
const key = Buffer.alloc(64, 7);
const seal = () => { const packet = Buffer.alloc(64 + 16, 1); new binding.ChaChaPolyCipher(key).encrypt(packet, 1); return packet.toString('hex', 64); };
const first = seal();
process.stdout.write('loaded\\n');
process.stdin.once('data', () => { process.stdout.write(seal() === first ? 'same\\n' : 'different\\n'); process.exit(0); });
`;

test('rebuilding the bundle leaves the native code of a running ebp intact', { timeout: 120_000 }, async () => {
  const name = readdirSync(dist).find((file) => file.startsWith('sshcrypto-') && file.endsWith('.node'));
  assert.ok(name !== undefined, 'the bundle has ssh2\'s binding next to it (npm run build)');
  const binding = join(dist, name);
  const before = statSync(binding).ino;
  const user = spawn(process.execPath, ['-e', USER, binding], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  user.stdout.setEncoding('utf8');
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    user.once('exit', (code, signal) => { resolve({ code, signal }); });
  });
  await new Promise<void>((resolve, reject) => {
    user.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('loaded\n')) resolve();
    });
    user.once('exit', () => { reject(new Error(`the binding did not load: ${out}`)); });
  });

  const build = spawnSync(process.execPath, [join(root, 'scripts', 'bundle.mjs')], { encoding: 'utf8', timeout: 100_000 });
  assert.equal(build.status, 0, build.stderr);
  assert.deepEqual(readdirSync(dist).filter((file) => file.endsWith('.tmp')), [], 'no temporary files left');

  user.stdin.end('go\n');
  const { code, signal } = await ended;
  assert.deepEqual({ code, signal, out }, { code: 0, signal: null, out: 'loaded\nsame\n' });
  // Replaced by a new file, not written into the one in use.
  assert.notEqual(statSync(binding).ino, before);
});

test('the run command\'s bundle holds no SSH library; it loads the dial bundle, which does, to run without a daemon', () => {
  // A string of ssh2's own (its cipher list), in the bundles that hold the library.
  const ssh2 = 'chacha20-poly1305@openssh.com';
  assert.ok(readFileSync(join(dist, 'ebp.cjs'), 'latin1').includes(ssh2), 'the marker is ssh2\'s');
  assert.ok(readFileSync(join(dist, 'ebp-dial.cjs'), 'latin1').includes(ssh2));
  const lean = readFileSync(join(dist, 'ebp-run.cjs'), 'latin1');
  assert.ok(!lean.includes(ssh2), 'no ssh2 in dist/ebp-run.cjs');
  assert.ok(lean.length < 100_000, `dist/ebp-run.cjs is lean (${lean.length} bytes)`);

  // No daemon in this state folder, a port where nothing listens: the launch dials the peer
  // itself through dist/ebp-dial.cjs, and its error is a user's error (status 255, a hint), not
  // an internal one: EbpError crossed from one bundle to the other.
  const scratch = mkdtempSync(join(tmpdir(), 'ebp-run-bundle-'));
  try {
    const run = spawnSync(process.execPath, [join(root, 'bin', 'ebp'), '--state-dir', join(scratch, 'state'), 'run', '127.0.0.1:1', 'true'], {
      encoding: 'utf8',
      env: { ...process.env, XDG_CACHE_HOME: join(scratch, 'cache'), EBP_DEBUG: '1' },
      timeout: 30_000,
    });
    assert.equal(run.stderr, 'ebp: cannot reach 127.0.0.1:1: connection refused (is `ebp up` running there?)\n');
    assert.equal(run.status, 255);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('the `ebp` command (package.json\'s bin) is bin/ebp with this node on its first line and the starter inside', () => {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: { ebp: string } };
  const command = join(root, manifest.bin.ebp);
  assert.equal(command, join(dist, 'bin', 'ebp'));
  const text = readFileSync(command, 'utf8');
  assert.equal(text.split('\n')[0], `#!${process.execPath}`, 'node named directly, no /usr/bin/env hop');
  assert.ok(!text.includes('require(starter)'), 'the code-cache starter is not loaded through require()');
  assert.equal(statSync(command).mode & 0o111, 0o111, 'executable');
  // Run directly (through its first line), it is the same command as bin/ebp.
  const direct = spawnSync(command, ['--version'], { encoding: 'utf8' });
  const portable = spawnSync(process.execPath, [join(root, 'bin', 'ebp'), '--version'], { encoding: 'utf8' });
  assert.equal(direct.status, 0, direct.stderr);
  assert.equal(direct.stdout, portable.stdout);
  assert.match(direct.stdout, /^ebp \d+\.\d+\.\d+\n$/);
  const help = spawnSync(command, ['run', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: ebp run /);
});
