// Ordinary programs run inside the real `ebp sandbox`: interpreters, coreutils, locale, fonts, a
// large pipe through cat, and the exit statuses ebp promises (the command's own, 128+N, 124, 125
// family, 126, 127, usage errors), plus the NAT network when this host can give it.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { before, test } from 'node:test';
import { EBP, inside, netUsable, probeOk, py, sandbox, setupOnce } from './helpers/ebp.js';

const T = { timeout: 60_000 } as const;

before(async () => {
  await setupOnce();
});

test('python3 and perl run', T, async () => {
  const python = await sandbox(['python3', '-c', 'import sys; print("py", sys.version_info[0], 6 * 7)']);
  assert.equal(python.code, 0, python.stderr);
  assert.equal(python.stdout, 'py 3 42\n');
  const perl = await sandbox(['perl', '-e', 'print join(",", map { $_ * 2 } 1..4), "\\n"']);
  assert.equal(perl.code, 0, perl.stderr);
  assert.equal(perl.stdout, '2,4,6,8\n');
  assert.equal(perl.stderr, '', 'no locale warnings from perl');
});

test('coreutils: ls, sort, sha256sum, date', T, async () => {
  const ls = await sandbox(['ls', '/usr/bin']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.ok(ls.stdout.split('\n').includes('python3'));
  const sort = await sandbox(['sort', '-n'], [], { input: '10\n9\n100\n-1\n' });
  assert.equal(sort.stdout, '-1\n9\n10\n100\n');
  const sha = await sandbox(['sha256sum'], [], { input: 'abc' });
  assert.equal(sha.stdout, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n');
  const date = await sandbox(['date', '-u', '+%s']);
  assert.equal(date.code, 0, date.stderr);
  assert.ok(Math.abs(Number(date.stdout) - Date.now() / 1000) < 60, `sandbox clock ${date.stdout}`);
  const pwd = await sandbox(['sh', '-c', 'pwd; id -un; hostname']);
  assert.equal(pwd.stdout, '/home/ebp\nebp\nsandbox\n');
});

test('locale works and LANG=C.UTF-8 passes through', T, async () => {
  const r = await sandbox(['locale'], [], { env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: '' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'no "Cannot set LC_*" warnings');
  assert.match(r.stdout, /^LANG=C\.UTF-8$/m);
  assert.match(r.stdout, /^LC_CTYPE="C\.UTF-8"$/m);
  const utf8 = await sandbox(['python3', '-c', 'import sys; print(sys.getfilesystemencoding(), "\\u00e9")'], [], { env: { ...process.env, LANG: 'C.UTF-8' } });
  assert.equal(utf8.stdout, 'utf-8 é\n');
});

test('fc-list finds the host\'s fonts through /etc/fonts and /usr/share/fonts', { timeout: 60_000, skip: existsSync('/usr/bin/fc-list') ? false : 'fontconfig not installed' }, async () => {
  const r = await sandbox(['fc-list']);
  assert.equal(r.code, 0, r.stderr);
  const fonts = r.stdout.trim().split('\n').filter((line) => line !== '');
  assert.ok(fonts.length >= 1, 'at least one font');
  assert.ok(fonts.every((line) => line.startsWith('/usr/')), fonts.slice(0, 3).join('\n'));
  // Oracle: the same fonts as on the host.
  const host = execFileSync('fc-list', { encoding: 'utf8' }).trim().split('\n').filter((line) => line !== '');
  assert.equal(fonts.length, host.length);
});

test('64 MiB of random bytes through `ebp sandbox -- cat` come back unchanged', T, async () => {
  const child = spawn(process.execPath, [EBP, 'sandbox', '--', 'cat'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const inHash = createHash('sha256');
  const outHash = createHash('sha256');
  let outBytes = 0;
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    outBytes += chunk.length;
    outHash.update(chunk);
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => {
    resolve(code);
  }));
  const total = 64 * 1024 * 1024;
  const chunkSize = 1024 * 1024;
  for (let sent = 0; sent < total; sent += chunkSize) {
    const chunk = randomBytes(chunkSize);
    inHash.update(chunk);
    if (!child.stdin.write(chunk)) await new Promise((resolve) => child.stdin.once('drain', resolve));
  }
  child.stdin.end();
  const code = await closed;
  assert.equal(code, 0, stderr);
  assert.equal(outBytes, total);
  assert.equal(outHash.digest('hex'), inHash.digest('hex'));
});

test('exit statuses: own code, 128+signal, 127, 126, 124 on timeout', T, async () => {
  assert.equal((await sandbox(['sh', '-c', 'exit 3'])).code, 3);
  assert.equal((await sandbox(['true'])).code, 0);
  assert.equal((await sandbox(['false'])).code, 1);
  assert.equal((await sandbox(['sh', '-c', 'kill -9 $$'])).code, 137);
  assert.equal((await sandbox(['sh', '-c', 'kill -TERM $$'])).code, 143);
  const missing = await sandbox(['no-such-program-ebp']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /no-such-program-ebp: not found/);
  const notExec = await sandbox(['/etc/passwd']);
  assert.equal(notExec.code, 126);
  assert.match(notExec.stderr, /Permission denied/);
  const timeout = await sandbox(['sleep', '10'], ['--timeout', '1s']);
  assert.equal(timeout.code, 124);
  assert.match(timeout.stderr, /timed out after 1000 ms/);
  assert.ok(timeout.ms >= 900 && timeout.ms < 5000, `took ${timeout.ms} ms`);
});

test('a bad setup request is a usage error (2) naming the path', T, async () => {
  const r = await sandbox(['true'], ['--share', '/nonexistent-ebp-share']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /\/nonexistent-ebp-share/);
  assert.match(r.stderr, /no such file or folder/);
  const reserved = await sandbox(['true'], ['--share', '/tmp:/usr/lib']);
  assert.equal(reserved.code, 2);
  assert.match(reserved.stderr, /would cover the sandbox's \/usr/);
  const badSize = await sandbox(['true'], ['--memory', 'lots']);
  assert.equal(badSize.code, 2, badSize.stderr);
});

test('--net gives the sandbox an interface with 198.18.254.100 and a default route', { timeout: 60_000, skip: netUsable() ? false : 'slirp4netns or /dev/net/tun missing' }, async () => {
  const code = py`
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out('udp_connect', tryf(lambda: s.connect(('198.18.254.3', 53))))   # no packet is sent
    out('address', s.getsockname()[0])
    addrs = open('/proc/net/fib_trie').read()
    out('has_guest', '198.18.254.100' in addrs)
    out('ifaces', ','.join(sorted(name for _, name in socket.if_nameindex())))
    out('resolv', open('/etc/resolv.conf').read().strip() if os.path.exists('/etc/resolv.conf') else 'absent')
  `;
  const r = probeOk(await inside(code, { flags: ['--net'] }));
  assert.equal(r['udp_connect'], 'OK');
  assert.equal(r['address'], '198.18.254.100');
  assert.equal(r['has_guest'], 'True');
  assert.equal(r['ifaces'], 'lo,tap0');
  assert.equal(r['resolv'], 'nameserver 198.18.254.3');
  // Oracle: without --net there is loopback only and no route out.
  const none = probeOk(await inside(code));
  assert.equal(none['udp_connect'], 'ENETUNREACH');
  assert.equal(none['ifaces'], 'lo');
  assert.equal(none['resolv'], 'absent');
});
