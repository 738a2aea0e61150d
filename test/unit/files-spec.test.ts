// The files spec a peer sends with a launch: everything hostile is refused with a clear message,
// everything sane passes unchanged; and the person's side plans what to expose and where.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkJail, jailArgs, parseAccess, planFiles } from '../../src/files/exports.js';
import { EbpError } from '../../src/lib/errors.js';
import { encodeFilesSpec, filesChannelToken, newToken, overlaps, parseFilesSpec, targetProblem } from '../../src/files/spec.js';
import { filesPrefix, FILES_SHIM, SFTP_FD } from '../../src/files/stage.js';
import { FD } from '../../src/sandbox/bwrap-args.js';

const TOKEN = 'abcdefghijklmnop0123';
const spec = (mounts: unknown[], token: unknown = TOKEN): string => JSON.stringify({ t: token, m: mounts });

test('a sane spec round-trips', () => {
  const parsed = parseFilesSpec(spec([{ s: 's/0', d: 'Documents', ro: false }, { s: 'f/3/report final.odt', d: 'Files/report final.odt', ro: true }]));
  assert.deepEqual(parsed, {
    token: TOKEN,
    mounts: [{ source: 's/0', target: 'Documents', readOnly: false }, { source: 'f/3/report final.odt', target: 'Files/report final.odt', readOnly: true }],
  });
  assert.deepEqual(parseFilesSpec(encodeFilesSpec(parsed)), parsed);
  assert.equal(parseFilesSpec(spec([{ s: 's/0', d: 'x' }])).mounts[0]?.readOnly, false, 'ro defaults to false');
});

test('hostile targets are refused', () => {
  const targets = ['', '.', '..', '../x', 'a/../../etc', '/etc', 'a//b', 'a/', './a', 'a/./b', 'a\0b', 'a\nb', 'x\u202ey', 'a'.repeat(256), Array(17).fill('a').join('/'), `${'a/'.repeat(600)}a`];
  for (const d of targets) {
    assert.throws(() => parseFilesSpec(spec([{ s: 's/0', d }])), /invalid file sharing request/, JSON.stringify(d));
  }
});

test('hostile sources, tokens and shapes are refused', () => {
  const bad = [
    spec([{ s: '../s/0', d: 'x' }]), spec([{ s: 's/0/..', d: 'x' }]), spec([{ s: 's/00', d: 'x' }]), spec([{ s: 's/32', d: 'x' }]),
    spec([{ s: 'f/0/..', d: 'x' }]), spec([{ s: 'f/0/a/b', d: 'x' }]), spec([{ s: 'f/0/', d: 'x' }]), spec([{ s: '/etc', d: 'x' }]),
    spec([{ s: 's/0', d: 'x', extra: 1 }]), spec([{ s: 's/0', d: 'x', ro: 'yes' }]), spec([{ s: 0, d: 'x' }]), spec([null]), spec([]),
    spec(Array.from({ length: 33 }, (_, i) => ({ s: `s/${i}`, d: `d${i}` }))),
    spec([{ s: 's/0', d: 'x' }], 'short'), spec([{ s: 's/0', d: 'x' }], 'ABCDEFGHIJKLMNOPQRST'), spec([{ s: 's/0', d: 'x' }], 7),
    'not json', '[]', 'null', `{"t":"${TOKEN}","m":[{"s":"s/0","d":"${'x'.repeat(17000)}"}]}`,
    '{"__proto__":{"t":"x"},"m":[]}',
  ];
  for (const text of bad) assert.throws(() => parseFilesSpec(text), /invalid file sharing request/, text.slice(0, 80));
});

test('duplicate sources and overlapping targets are refused', () => {
  assert.throws(() => parseFilesSpec(spec([{ s: 's/0', d: 'a' }, { s: 's/0', d: 'b' }])), /two mounts/);
  assert.throws(() => parseFilesSpec(spec([{ s: 'f/0/x', d: 'a' }, { s: 'f/0/y', d: 'b' }])), /two mounts numbered/);
  assert.throws(() => parseFilesSpec(spec([{ s: 's/0', d: 'a' }, { s: 's/1', d: 'a' }])), /overlap/);
  assert.throws(() => parseFilesSpec(spec([{ s: 's/0', d: 'a' }, { s: 's/1', d: 'a/b' }])), /overlap/);
  assert.doesNotThrow(() => parseFilesSpec(spec([{ s: 's/0', d: 'a' }, { s: 's/1', d: 'ab' }])));
  assert.equal(overlaps('a/b', 'a'), true);
  assert.equal(overlaps('a', 'ab'), false);
  assert.equal(targetProblem('Documents/2024'), undefined);
});

test('the files channel command and tokens', () => {
  assert.equal(filesChannelToken(`ebp:files ${TOKEN}`), TOKEN);
  for (const command of ['ebp:files', `ebp:files ${TOKEN} x`, 'ebp:files short', `ebp:files  ${TOKEN}`, `ebp:filesX ${TOKEN}`]) assert.equal(filesChannelToken(command), undefined, command);
  const token = newToken((size) => Buffer.alloc(size, 200));
  assert.match(token, /^[a-z0-9]{24}$/);
});

test('the stage shim: fixed text, inputs only as parameters, SFTP descriptor kept out of bwrap', () => {
  assert.equal(SFTP_FD, FD.sftp);
  const prefix = filesPrefix('/run/ebp/s/x', { unshare: '/usr/bin/unshare', sshfs: '/usr/bin/sshfs', mountpoint: '/usr/bin/mountpoint' });
  assert.deepEqual(prefix.slice(0, 8), ['/usr/bin/unshare', '--user', '--map-root-user', '--mount', '--propagation', 'private', '--', '/bin/sh']);
  assert.equal(prefix[9], FILES_SHIM);
  assert.equal(prefix[11], '/run/ebp/s/x');
  assert.match(prefix[14] ?? '', /contain_symlinks/);
  assert.match(prefix[14] ?? '', /nosuid/);
  assert.match(prefix[14] ?? '', /nodev/);
  assert.match(FILES_SHIM, /exec "\$@" 8>&-$/);
});

const tmp = mkdtempSync(join(tmpdir(), 'ebp-files-unit-'));
after(() => { rmSync(tmp, { recursive: true, force: true }); });

test('planning: folders in the home keep their place, others go under Shared, files under Files', () => {
  const home = join(tmp, 'home');
  mkdirSync(join(home, 'Documents', 'sub'), { recursive: true });
  mkdirSync(join(tmp, 'elsewhere', 'photos'), { recursive: true });
  writeFileSync(join(home, 'Documents', 'a.txt'), 'a');
  writeFileSync(join(home, 'notes.txt'), 'n');
  writeFileSync(join(tmp, 'elsewhere', 'b.txt'), 'b');
  const plan = planFiles({
    shares: [join(home, 'Documents'), `${join(tmp, 'elsewhere', 'photos')}:ro`],
    files: [join(tmp, 'elsewhere', 'b.txt')],
    args: ['--flag', join(home, 'Documents', 'a.txt'), join(home, 'notes.txt'), 'not-a-file'],
    autoFiles: true,
    home,
    cwd: tmp,
  });
  assert.deepEqual(plan.mounts, [
    { source: 's/0', target: 'Documents', readOnly: false },
    { source: 's/1', target: 'Shared/photos', readOnly: true },
    { source: 'f/0/b.txt', target: 'Files/b.txt', readOnly: false },
    { source: 'f/1/notes.txt', target: 'notes.txt', readOnly: false },
  ]);
  assert.deepEqual(plan.args, ['--flag', '/home/ebp/Documents/a.txt', '/home/ebp/notes.txt', 'not-a-file', '/home/ebp/Files/b.txt']);
  assert.deepEqual(plan.exports.map((entry) => entry.jailPath), ['/s/0', '/s/1', '/f/0/b.txt', '/f/1/notes.txt']);
});

test('planning: without autoFiles, arguments stay as typed; overlapping shares and missing paths are refused', () => {
  const home = join(tmp, 'home2');
  mkdirSync(join(home, 'a', 'b'), { recursive: true });
  writeFileSync(join(home, 'f.txt'), 'f');
  assert.deepEqual(planFiles({ shares: [], files: [], args: [join(home, 'f.txt')], autoFiles: false, home, cwd: tmp }).args, [join(home, 'f.txt')]);
  assert.throws(() => planFiles({ shares: [join(home, 'a'), join(home, 'a', 'b')], files: [], args: [], autoFiles: false, home, cwd: tmp }), /overlap/);
  assert.throws(() => planFiles({ shares: [join(home, 'nope')], files: [], args: [], autoFiles: false, home, cwd: tmp }), /does not exist/);
  assert.throws(() => planFiles({ shares: [join(home, 'f.txt')], files: [], args: [], autoFiles: false, home, cwd: tmp }), /not a folder/);
  assert.throws(() => planFiles({ shares: [], files: [join(home, 'a')], args: [], autoFiles: false, home, cwd: tmp }), /not a regular file/);
  // A symlink is shared as what it points to.
  symlinkSync(join(home, 'a'), join(home, 'link'));
  assert.equal(planFiles({ shares: [join(home, 'link')], files: [], args: [], autoFiles: false, home, cwd: tmp }).exports[0]?.path, join(home, 'a'));
  assert.deepEqual(parseAccess('x:ro'), { path: 'x', readOnly: true });
  assert.deepEqual(parseAccess('x:rw'), { path: 'x', readOnly: false });
  assert.deepEqual(parseAccess('x'), { path: 'x', readOnly: false });
});

test('the jail: all namespaces new, system read-only, exports bound at their jail paths, / read-only', () => {
  const args = jailArgs(
    [{ kind: 'folder', path: '/home/p/Docs', jailPath: '/s/0', readOnly: false }, { kind: 'folder', path: '/srv/x', jailPath: '/s/1', readOnly: true }, { kind: 'file', path: '/home/p/r.odt', jailPath: '/f/0/r.odt', readOnly: false }],
    { topDirs: [{ name: 'bin', kind: 'symlink', target: 'usr/bin' }] },
    ['/usr/lib/openssh/sftp-server'],
  );
  const joined = args.join(' ');
  assert.ok(joined.startsWith('--unshare-all --die-with-parent --new-session --cap-drop ALL'));
  assert.match(joined, /--ro-bind \/usr \/usr/);
  assert.match(joined, /--bind \/home\/p\/Docs \/s\/0 --ro-bind \/srv\/x \/s\/1 --bind \/home\/p\/r.odt \/f\/0\/r.odt --remount-ro \/ --chdir \/ -- \/usr\/lib\/openssh\/sftp-server$/);
  assert.ok(!args.includes('/home') && !args.includes('/etc'), 'no other host folder');
});

test('no jail, no sharing: a missing or unusable bwrap is refused with the fix', async () => {
  const exports = [{ kind: 'folder' as const, path: tmp, jailPath: '/s/0', readOnly: true }];
  const layout = { topDirs: [] };
  await assert.rejects(checkJail('bwrap', exports, layout), (error: unknown) => error instanceof EbpError && error.code === 'SANDBOX_UNSUPPORTED' && /apt-get install bubblewrap/.test(error.hint ?? ''));
  await assert.rejects(checkJail('/nonexistent/bwrap', exports, layout), (error: unknown) => error instanceof EbpError && /cannot share files/.test(error.message) && /user namespaces/.test(error.hint ?? ''));
});
