import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { buildBwrapArgs, FD, LAUNCH_SHIM, PREPARED_SHELL, PREPARED_SHIM, preparedInput } from '../../src/sandbox/bwrap-args.js';
import type { HostLayout } from '../../src/sandbox/host-layout.js';
import { cleanEnvironment, type SandboxPolicy } from '../../src/sandbox/policy.js';

const merged: HostLayout = {
  topDirs: [
    { name: 'bin', kind: 'symlink', target: 'usr/bin' },
    { name: 'lib', kind: 'symlink', target: 'usr/lib' },
    { name: 'lib64', kind: 'symlink', target: 'usr/lib64' },
  ],
};
const split: HostLayout = { topDirs: [{ name: 'bin', kind: 'directory' }, { name: 'lib', kind: 'directory' }] };

function policy(overrides: Partial<SandboxPolicy> = {}): SandboxPolicy {
  return {
    command: ['echo', 'hi'],
    network: 'none',
    limits: { memoryBytes: 1 << 30, pids: 100, cpus: 1 },
    home: { kind: 'ephemeral', sizeBytes: 1 << 20 },
    tmpSizeBytes: 2 << 20,
    shares: [],
    env: cleanEnvironment({}),
    hostname: 'sandbox',
    ...overrides,
  };
}

/** Pairs "--opt A B" present in order somewhere in args. */
function hasSequence(args: readonly string[], ...sequence: string[]): boolean {
  for (let i = 0; i + sequence.length <= args.length; i += 1) {
    if (sequence.every((item, j) => args[i + j] === item)) return true;
  }
  return false;
}

test('every namespace is new, user namespaces are disabled inside, and the session is new', () => {
  const { args } = buildBwrapArgs(policy(), { layout: merged });
  for (const flag of ['--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup', '--unshare-net', '--disable-userns', '--new-session', '--die-with-parent']) {
    assert.ok(args.includes(flag), flag);
  }
  assert.ok(hasSequence(args, '--uid', '1000', '--gid', '1000'));
  assert.ok(!args.includes('--share-net'));
});

test('host /usr is read-only and merged-usr links are mirrored as symlinks', () => {
  const { args } = buildBwrapArgs(policy(), { layout: merged });
  assert.ok(hasSequence(args, '--ro-bind', '/usr', '/usr'));
  assert.ok(hasSequence(args, '--symlink', 'usr/bin', '/bin'));
  assert.ok(hasSequence(args, '--symlink', 'usr/lib64', '/lib64'));
  assert.ok(!args.includes('/sbin'), 'a top dir the host lacks is not created');
});

test('split /usr hosts get read-only binds of the top directories', () => {
  const { args } = buildBwrapArgs(policy(), { layout: split });
  assert.ok(hasSequence(args, '--ro-bind', '/bin', '/bin'));
  assert.ok(hasSequence(args, '--ro-bind', '/lib', '/lib'));
});

test('no host /etc secrets, no /sys, no host sockets are ever bound', () => {
  const { args } = buildBwrapArgs(policy({ network: 'nat' }), { layout: merged, dnsAddress: '198.18.254.3' });
  const joined = args.join(' ');
  for (const secret of ['/etc/shadow', '/etc/ssh', '/etc/sudoers', '/etc/passwd /etc/passwd', '/sys', '/tmp/.X11-unix', '/run/dbus', '/var/run', 'docker.sock', '/root', '/home ']) {
    assert.ok(!joined.includes(secret), secret);
  }
  assert.ok(!args.some((arg) => arg === '/' && args[args.indexOf(arg) - 1] === '--bind'), 'never binds the host root');
});

test('generated /etc files are passed on descriptors, resolv.conf and certificates only with network', () => {
  const none = buildBwrapArgs(policy(), { layout: merged });
  const paths = (plan: typeof none): string[] => plan.args.filter((_, i) => plan.args[i - 2] === '--file');
  assert.deepEqual(paths(none), ['/etc/passwd', '/etc/group', '/etc/hostname', '/etc/hosts', '/etc/nsswitch.conf', '/etc/machine-id']);
  assert.equal(none.dataFiles.length, 6);
  // Copied into the /etc tmpfs (read-only at the end), not bind-mounted.
  assert.ok(hasSequence(none.args, '--perms', '0644', '--file', String(FD.firstData), '/etc/passwd'));
  assert.ok(!none.args.includes('--ro-bind-data') && !none.args.includes('--bind-data'));
  assert.ok(none.args.indexOf('--remount-ro') > none.args.indexOf('/etc/machine-id'));
  assert.match(none.dataFiles[0] ?? '', /^root:x:0:0:.*\nebp:x:1000:1000:/);
  assert.ok(!none.args.includes('/etc/ssl'));
  const nat = buildBwrapArgs(policy({ network: 'nat' }), { layout: merged, dnsAddress: '198.18.254.3' });
  assert.ok(paths(nat).includes('/etc/resolv.conf'));
  assert.ok(nat.dataFiles.includes('nameserver 198.18.254.3\n'));
  assert.ok(hasSequence(nat.args, '--ro-bind-try', '/etc/ssl', '/etc/ssl'));
});

test('host /etc files given as descriptors are copied after the generated ones; the rest stay bound', () => {
  const plain = buildBwrapArgs(policy(), { layout: merged });
  assert.ok(hasSequence(plain.args, '--ro-bind-try', '/etc/ld.so.cache', '/etc/ld.so.cache'));
  const plan = buildBwrapArgs(policy(), { layout: merged, copiedEtc: ['ld.so.cache', 'localtime'] });
  const first = FD.firstData + plan.dataFiles.length;
  assert.ok(hasSequence(plan.args, '--perms', '0644', '--file', String(first), '/etc/ld.so.cache'));
  assert.ok(hasSequence(plan.args, '--perms', '0644', '--file', String(first + 1), '/etc/localtime'));
  assert.ok(!hasSequence(plan.args, '--ro-bind-try', '/etc/ld.so.cache'));
  // Folders and files not given stay bind mounts; nothing is both.
  assert.ok(hasSequence(plan.args, '--ro-bind-try', '/etc/fonts', '/etc/fonts'));
  assert.ok(hasSequence(plan.args, '--ro-bind-try', '/etc/services', '/etc/services'));
  assert.equal(plan.args.filter((arg) => arg === '/etc/localtime').length, 1);
  // A name outside the allow-list is never placed, whatever is given.
  assert.ok(!buildBwrapArgs(policy(), { layout: merged, copiedEtc: ['shadow'] }).args.includes('/etc/shadow'));
});

test('machine-id is random per sandbox', () => {
  const a = buildBwrapArgs(policy(), { layout: merged }).dataFiles[5];
  const b = buildBwrapArgs(policy(), { layout: merged }).dataFiles[5];
  assert.match(a ?? '', /^[0-9a-f]{32}\n$/);
  assert.notEqual(a, b);
});

test('writable places are size-limited tmpfs mounts and / is read-only at the end', () => {
  const { args } = buildBwrapArgs(policy(), { layout: merged });
  assert.ok(hasSequence(args, '--perms', '1777', '--size', String(2 << 20), '--tmpfs', '/tmp'));
  assert.ok(hasSequence(args, '--perms', '0700', '--size', String(1 << 20), '--tmpfs', '/home/ebp'));
  assert.ok(hasSequence(args, '--perms', '0700', '--size', String(64 << 20), '--tmpfs', '/run/user/1000'));
  assert.ok(hasSequence(args, '--tmpfs', '/dev/shm'));
  assert.ok(hasSequence(args, '--remount-ro', '/'));
  assert.ok(args.lastIndexOf('--remount-ro') < args.indexOf('--'));
});

test('a persistent home and shares are bind mounts, read-only when asked', () => {
  const { args } = buildBwrapArgs(policy({
    home: { kind: 'persistent', hostPath: '/srv/homes/a' },
    shares: [{ source: '/data/docs', target: '/home/ebp/Documents', readOnly: false }, { source: '/data/ro', target: '/mnt/ro', readOnly: true }],
  }), { layout: merged });
  assert.ok(hasSequence(args, '--bind', '/srv/homes/a', '/home/ebp'));
  assert.ok(hasSequence(args, '--bind', '/data/docs', '/home/ebp/Documents'));
  assert.ok(hasSequence(args, '--ro-bind', '/data/ro', '/mnt/ro'));
  assert.ok(!args.includes('--size') || !hasSequence(args, '--tmpfs', '/home/ebp'));
});

test('the command comes after `--` and the shim, so no argument can become a bwrap option', () => {
  const hostile = ['--bind', '/', '/', '$(id)', ';reboot', 'a\nb'];
  const { args } = buildBwrapArgs(policy({ command: hostile }), { layout: merged });
  const end = args.indexOf('--');
  assert.deepEqual(args.slice(end), ['--', '/bin/sh', '-c', LAUNCH_SHIM, 'sh', ...hostile]);
  assert.equal(args.indexOf('--'), args.lastIndexOf('--') < end ? end : args.indexOf('--'));
  assert.ok(hasSequence(args, '--seccomp', String(FD.seccomp), '--json-status-fd', String(FD.status), '--block-fd', String(FD.block)));
});

test('an empty command is refused', () => {
  assert.throws(() => buildBwrapArgs(policy({ command: [] }), { layout: merged }), /empty command/);
});

test('the environment is an allow-list', () => {
  const env = cleanEnvironment({ LD_PRELOAD: '/tmp/x.so', PATH: '/evil', LANG: 'de_DE.UTF-8', LC_ALL: 'C', TERM: 'xterm-256color', LC_EVIL: 'a b', DISPLAY: ':0', HOME: '/root' });
  assert.deepEqual(Object.keys(env).sort(), ['HOME', 'LANG', 'LC_ALL', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER', 'XDG_RUNTIME_DIR']);
  assert.equal(env['PATH'], '/usr/local/bin:/usr/bin:/bin');
  assert.equal(env['HOME'], '/home/ebp');
});

test('the person\'s files: each mount binds a subpath of the stage into the home, :ro read-only, before / goes read-only', () => {
  const remoteFiles = {
    stage: '/run/ebp/stages-x/abc',
    mounts: [
      { source: 's/0', target: 'Documents', readOnly: false },
      { source: 's/1', target: 'Shared/photos', readOnly: true },
      { source: 'f/0/report.odt', target: 'Files/report.odt', readOnly: false },
    ],
  };
  const { args } = buildBwrapArgs(policy({ remoteFiles }), { layout: merged });
  assert.ok(hasSequence(args, '--bind', '/run/ebp/stages-x/abc/s/0', '/home/ebp/Documents'));
  assert.ok(hasSequence(args, '--ro-bind', '/run/ebp/stages-x/abc/s/1', '/home/ebp/Shared/photos'));
  assert.ok(hasSequence(args, '--bind', '/run/ebp/stages-x/abc/f/0/report.odt', '/home/ebp/Files/report.odt'));
  const home = args.indexOf('/home/ebp');
  const lastBind = args.indexOf('/home/ebp/Files/report.odt');
  assert.ok(home < lastBind, 'after the home is made');
  assert.ok(lastBind < args.lastIndexOf('--remount-ro'), 'before / is made read-only');
  // The stage itself is never bound: only its subpaths.
  assert.ok(!args.includes('/run/ebp/stages-x/abc'));
  // Without files nothing of it appears.
  assert.ok(!buildBwrapArgs(policy(), { layout: merged }).args.some((arg) => arg.includes('stages')));
});

test('the data files start after the SFTP and command descriptors', () => {
  assert.deepEqual(new Set([FD.sftp, FD.command, FD.firstData]).size, 3);
  assert.ok(hasSequence(buildBwrapArgs(policy(), { layout: merged }).args, '--file', String(FD.firstData)));
});

test('a prepared sandbox runs the waiting shim (its prefix first) and none of the policy\'s command; its mounts are the same', () => {
  const hostile = policy({ command: ['--bind', '/', '/', '$(id)'] });
  const prepared = buildBwrapArgs(hostile, { layout: merged, prepared: { prefix: ['/usr/bin/setsid', '--ctty', '--'] } }).args;
  const end = prepared.indexOf('--');
  assert.deepEqual(prepared.slice(end), ['--', '/usr/bin/setsid', '--ctty', '--', PREPARED_SHELL, '-c', PREPARED_SHIM, 'ebp-prepared']);
  const usual = buildBwrapArgs(hostile, { layout: merged }).args;
  assert.deepEqual(prepared.slice(0, end), usual.slice(0, usual.indexOf('--')));
  // An empty command is fine here: the command comes later.
  assert.doesNotThrow(() => buildBwrapArgs(policy({ command: [] }), { layout: merged, prepared: { prefix: [] } }));
  // The shim reads its words from FD.command as data (read -r), never through eval.
  assert.match(PREPARED_SHIM, new RegExp(`IFS= read -r ebp_line <&${FD.command}`));
  assert.doesNotMatch(PREPARED_SHIM, /eval/);
});

test('a prepared sandbox\'s input: a line per word, a C line for each newline inside one, X at the end', () => {
  assert.equal(preparedInput(['/usr/bin/printf', '%s|', 'two\nlines', ''], { LANG: 'C.UTF-8', NOTE: 'a\n\nb' }),
    'A/usr/bin/printf\nA%s|\nAtwo\nClines\nA\nELANG=C.UTF-8\nENOTE=a\nC\nCb\nX\n');
  assert.equal(preparedInput(['/bin/true'], {}), 'A/bin/true\nX\n');
});

test('the waiting shim, run by the real /bin/sh, executes exactly the words it is given and exports the variables', () => {
  const words = ['/usr/bin/printf', '[%s]\\n', 'a b', ' lead and trail ', 'back\\slash', '$(id)', '`id`', 'line\nbreak', '', '-n', 'X', 'A', 'C', 'E=1', '*', '\n'];
  const env = { EBP_TEST_ONE: 'x y', EBP_TEST_TWO: 'first\nsecond\n' };
  const script = PREPARED_SHIM.replace(`>&${FD.ready}`, '>/dev/null').replace(` ${FD.ready}>&-`, '');
  const run = (input: string): { stdout: string; status: number | null } => {
    const result = spawnSync(PREPARED_SHELL, ['-c', `exec ${FD.command}<&0 0</dev/null; ${script}`, 'ebp-prepared'], { input, encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    return { stdout: result.stdout, status: result.status };
  };
  const ran = run(preparedInput(words, {}));
  assert.equal(ran.status, 0);
  assert.equal(ran.stdout, words.slice(2).map((word) => `[${word}]\n`).join(''));
  const printed = run(preparedInput(['/bin/sh', '-c', 'printf "%s|%s" "$EBP_TEST_ONE" "$EBP_TEST_TWO"'], env));
  assert.equal(printed.stdout, 'x y|first\nsecond\n');
  // Without the X (the daemon discarded it), nothing runs.
  assert.deepEqual(run('A/usr/bin/printf\nAran\n'), { stdout: '', status: 0 });
  assert.deepEqual(run(''), { stdout: '', status: 0 });
});
