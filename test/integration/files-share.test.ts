// The person's own files in a remote sandbox, end to end with two real processes on loopback: a
// host daemon (sshfs in the sandbox's namespace) and `ebp run` (OpenSSH's sftp-server in a
// bubblewrap jail). Forwarded file arguments read and saved in place, shared folders edited
// live both ways, atomic saves, `:ro` enforced, escapes refused, sessions kept apart, and no
// FUSE mount on the host at any time or after any ending.
import assert from 'node:assert/strict';
import { existsSync, linkSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { stagesRoot } from '../../src/files/stage.js';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import {
  clientDir, ebpIn, hostConfig, poolCleanup, shown, STANDARD_APPS, startDaemon, startIn, tempDir, trustClient, waitUntil,
  type PoolDaemon,
} from './helpers/pool.js';

const SKIP = IS_ROOT ? false : 'needs root (sandboxes run as the ebp-sandbox user)';

let host: PoolDaemon;
let client: string;

/** FUSE mounts in this (the host's) mount namespace. */
function hostFuseMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((line) => /fuse|sshfs/.test(line));
}

/** The stages (empty folders) a daemon has now. */
function stagesOf(daemon: PoolDaemon): string[] {
  const root = stagesRoot(daemon.stateDir, IS_ROOT);
  return existsSync(root) ? readdirSync(root) : [];
}

/** The sshfs processes running for a daemon's stages. */
function sshfsOf(daemon: PoolDaemon): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.some((word) => word.endsWith('sshfs')) && argv.some((word) => word.startsWith(stagesRoot(daemon.stateDir, IS_ROOT)))) found.push(Number(pid));
    } catch {
      // gone
    }
  }
  return found;
}

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  host = await startDaemon({
    label: 'A',
    config: hostConfig({ name: 'alpha', policy: 'trusted-only', apps: [...STANDARD_APPS, { id: 'catf', name: 'Cat files', exec: 'cat %F' }] }),
  });
  client = clientDir('C');
  await trustClient(host, client);
});
after(poolCleanup);

describe('forwarded files', { skip: SKIP }, () => {
  test('an argument naming a local file is forwarded to an app that takes files, and only it', { timeout: 60_000 }, async () => {
    const dir = tempDir('fwd');
    const file = join(dir, 'report.txt');
    writeFileSync(file, 'quarterly numbers\n');
    writeFileSync(join(dir, 'secret.txt'), 'not for the peer\n');
    const result = await ebpIn(client, ['run', host.endpoint, 'catf', file]);
    assert.equal(result.code, 0, shown(result));
    assert.equal(result.stdout, 'quarterly numbers\n');
    assert.deepEqual(hostFuseMounts(), []);
  });

  test('--file: the app reads and saves the file in place; the argument is rewritten', { timeout: 60_000 }, async () => {
    const dir = tempDir('inplace');
    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'line one\n');
    const script = 'echo "arg=$1"; cat "$1"; echo "line two" >> "$1"; ls "$(dirname "$1")"';
    const result = await ebpIn(client, ['run', '--file', file, host.endpoint, 'sh', '-c', script, 'sh', file]);
    assert.equal(result.code, 0, shown(result));
    assert.match(result.stdout, /^arg=\/home\/ebp\/Files\/notes\.txt$/m, shown(result));
    assert.match(result.stdout, /^line one$/m);
    assert.equal(readFileSync(file, 'utf8'), 'line one\nline two\n');
    // Only the file itself: nothing else of its folder shows.
    assert.match(result.stdout, /^notes\.txt\n$/m);
  });
});

describe('shared folders', { skip: SKIP }, () => {
  test('edited live both ways; atomic save by rename works', { timeout: 60_000 }, async () => {
    const dir = tempDir('live');
    writeFileSync(join(dir, 'a.txt'), 'from the person\n');
    const name = dir.split('/').pop() ?? '';
    const script = [
      `cd /home/ebp/Shared/${name}`,
      'cat a.txt',
      'echo "from the app" > b.txt',
      // wait for the person's side to write c.txt
      'i=0; while [ ! -e c.txt ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat c.txt',
      'printf "saved atomically\\n" > .a.tmp && mv .a.tmp a.txt && echo renamed',
    ].join('\n');
    const started = startIn(client, ['run', '--share', dir, host.endpoint, 'sh', '-c', script]);
    // The file exists as soon as the app's shell opens it, before its line is written: wait for both.
    const written = (): string | undefined => (existsSync(join(dir, 'b.txt')) ? readFileSync(join(dir, 'b.txt'), 'utf8') : undefined);
    await waitUntil(() => written() === 'from the app\n' || undefined, 20_000, 'the app\'s file and its line on the person\'s disk');
    assert.equal(written(), 'from the app\n');
    assert.deepEqual(hostFuseMounts(), [], 'no FUSE mount in the host\'s mount table while it runs');
    writeFileSync(join(dir, 'c.txt'), 'from the person, later\n');
    const result = await started.done;
    assert.equal(result.code, 0, shown(result));
    assert.equal(result.stdout, 'from the person\nfrom the person, later\nrenamed\n');
    assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'saved atomically\n');
    assert.ok(!existsSync(join(dir, '.a.tmp')));
  });

  test(':ro refuses writes, renames and deletes', { timeout: 60_000 }, async () => {
    const dir = tempDir('ro');
    writeFileSync(join(dir, 'keep.txt'), 'unchanged\n');
    const name = dir.split('/').pop() ?? '';
    const script = `cd /home/ebp/Shared/${name}; cat keep.txt; for op in 'echo x >> keep.txt' 'echo y > new.txt' 'rm keep.txt' 'mv keep.txt k2' 'mkdir d'; do sh -c "$op" 2>/dev/null && echo "ALLOWED $op"; done; echo done`;
    const result = await ebpIn(client, ['run', '--share', `${dir}:ro`, host.endpoint, 'sh', '-c', script]);
    assert.equal(result.code, 0, shown(result));
    assert.equal(result.stdout, 'unchanged\ndone\n', shown(result));
    assert.deepEqual(readdirSync(dir), ['keep.txt']);
    assert.equal(readFileSync(join(dir, 'keep.txt'), 'utf8'), 'unchanged\n');
  });
});

describe('with the local daemon running', { skip: SKIP }, () => {
  test('a peer named by its name is resolved by the daemon, then dialled with its key pinned', { timeout: 60_000 }, async () => {
    const relay = await startDaemon({ label: 'R', config: hostConfig({ name: 'rho', apps: [] }) });
    await trustClient(host, relay.stateDir);
    const added = await ebpIn(relay.stateDir, ['peers', 'add', host.endpoint]);
    assert.equal(added.code, 0, shown(added));
    await waitUntil(async () => (await ebpIn(relay.stateDir, ['peers'])).stdout.includes('alpha'), 20_000, 'the static peer known by name');
    const dir = tempDir('relay');
    writeFileSync(join(dir, 'r.txt'), 'through the name\n');
    const name = dir.split('/').pop() ?? '';
    const result = await ebpIn(relay.stateDir, ['run', '--share', `${dir}:ro`, 'alpha', 'sh', '-c', `cat /home/ebp/Shared/${name}/r.txt`]);
    assert.equal(result.code, 0, shown(result));
    assert.equal(result.stdout, 'through the name\n');
    await relay.stop();
  });
});

describe('escapes', { skip: SKIP }, () => {
  test('.., absolute paths, symlinks and hard links made by the app do not reach the person\'s other files', { timeout: 90_000 }, async () => {
    const top = tempDir('esc');
    const shared = join(top, 'shared');
    mkdirSync(shared);
    const secret = join(top, 'secret.txt');
    writeFileSync(secret, 'TOP-SECRET\n');
    writeFileSync(join(shared, 'inside.txt'), 'ok\n');
    // A symlink the person has in the share, pointing out of it.
    symlinkSync(secret, join(shared, 'abs-link'));
    symlinkSync('../secret.txt', join(shared, 'rel-link'));
    const script = [
      'cd /home/ebp/Shared/shared',
      'cat inside.txt',
      'cat ../secret.txt 2>/dev/null',
      `cat ${secret} 2>/dev/null`,
      'cat abs-link 2>/dev/null',
      'cat rel-link 2>/dev/null',
      `ln -s ${secret} app-abs 2>/dev/null; cat app-abs 2>/dev/null`,
      'ln -s ../secret.txt app-rel 2>/dev/null; cat app-rel 2>/dev/null',
      'ln -s ../../../../../../../../etc/passwd app-deep 2>/dev/null; cat app-deep 2>/dev/null | head -1',
      `ln ${secret} app-hard 2>/dev/null; cat app-hard 2>/dev/null`,
      'ln abs-link app-hard2 2>/dev/null; cat app-hard2 2>/dev/null',
      'echo end',
    ].join('\n');
    const result = await ebpIn(client, ['run', '--share', shared, host.endpoint, 'sh', '-c', script]);
    assert.equal(result.code, 0, shown(result));
    assert.ok(!result.stdout.includes('TOP-SECRET'), shown(result));
    assert.ok(!/root:/.test(result.stdout), `the person's /etc/passwd: ${shown(result)}`);
    assert.equal(result.stdout, 'ok\nend\n', shown(result));
    // Whatever the app made, the person's secret is untouched.
    assert.equal(readFileSync(secret, 'utf8'), 'TOP-SECRET\n');
  });

  test('a hard link the person has is just that file; a forged spec cannot escape the home', { timeout: 60_000 }, async () => {
    const top = tempDir('hard');
    const shared = join(top, 'shared');
    mkdirSync(shared);
    writeFileSync(join(top, 'outside.txt'), 'linked\n');
    linkSync(join(top, 'outside.txt'), join(shared, 'linked.txt'));
    const result = await ebpIn(client, ['run', '--share', shared, host.endpoint, 'sh', '-c', 'cat /home/ebp/Shared/shared/linked.txt; ls /home/ebp/Shared']);
    assert.equal(result.code, 0, shown(result));
    assert.equal(result.stdout, 'linked\nshared\n');
  });
});

/** Direct children of a process. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('a person\'s side that goes away', { skip: SKIP }, () => {
  test('the file server gone: file operations in the sandbox fail within seconds, the app goes on', { timeout: 60_000 }, async () => {
    const dir = tempDir('gone');
    writeFileSync(join(dir, 'f.txt'), 'before\n');
    const name = dir.split('/').pop() ?? '';
    const script = `cd /home/ebp/Shared/${name}; cat f.txt; echo ready; read _; s=$(date +%s); cat f.txt 2>&1; echo "rc=$? in $(( $(date +%s) - s ))s"`;
    const started = startIn(client, ['run', '--share', dir, host.endpoint, 'sh', '-c', script], { input: '' });
    await started.waitFor(/ready/, 30_000);
    // The jail (bwrap, then sftp-server) is the client's only child process.
    const jails = childrenOf(started.child.pid ?? -1);
    assert.equal(jails.length, 1, `one jail under the client: ${jails.join(',')}`);
    process.kill(jails[0] ?? -1, 'SIGKILL');
    await delay(500);
    started.child.stdin?.end('go\n');
    const result = await started.done;
    assert.equal(result.code, 0, shown(result));
    assert.match(result.stdout, /^before\nready\n/);
    assert.match(result.stdout, /Transport endpoint is not connected|Input\/output error|Software caused connection abort/, shown(result));
    assert.match(result.stdout, /rc=1 in [0-2]s/, shown(result));
  });

  test('a file channel that never answers fails the launch in seconds with a clear message', { timeout: 60_000 }, async () => {
    const { connectTo } = await import('../../src/cli/peer-direct.js');
    const connection = await connectTo({ stateDir: client, configDir: client, runtimeDir: join(client, 'run') }, { host: '127.0.0.1', port: host.port });
    try {
      await connection.exec('ebp:files abcdefghijklmnop0123');
      const spec = JSON.stringify({ t: 'abcdefghijklmnop0123', m: [{ s: 's/0', d: 'Docs', ro: false }] });
      const began = Date.now();
      const remote = await connection.exec('echo never', { env: { EBP_FILES: spec } });
      let err = '';
      let out = '';
      remote.stderr.on('data', (chunk: Buffer) => { err += chunk.toString(); });
      remote.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
      remote.stdin.end();
      const exit = await remote.exit;
      assert.deepEqual(exit, { kind: 'code', code: 125 });
      assert.equal(out, '');
      assert.match(err, /the person's files could not be mounted/);
      assert.ok(Date.now() - began < 20_000);
      // And a launch naming a channel that is not open is refused.
      const stray = await connection.exec('echo never', { env: { EBP_FILES: JSON.stringify({ t: 'zzzzzzzzzzzzzzzzzzzz', m: [{ s: 's/0', d: 'Docs' }] }) } });
      let strayErr = '';
      stray.stderr.on('data', (chunk: Buffer) => { strayErr += chunk.toString(); });
      stray.stdout.resume();
      stray.stdin.end();
      assert.deepEqual(await stray.exit, { kind: 'code', code: 2 });
      assert.match(strayErr, /file channel that is not open/);
    } finally {
      connection.close();
    }
    await waitUntil(() => sshfsOf(host).length === 0 && stagesOf(host).length === 0, 15_000, 'nothing left');
  });

  test('forged specs are refused before anything starts', { timeout: 60_000 }, async () => {
    const { connectTo } = await import('../../src/cli/peer-direct.js');
    const connection = await connectTo({ stateDir: client, configDir: client, runtimeDir: join(client, 'run') }, { host: '127.0.0.1', port: host.port });
    const forged = [
      { s: 's/0', d: '../../etc' }, { s: 's/0', d: '/etc' }, { s: 's/0', d: '' }, { s: 's/0', d: 'a/../..' },
      { s: '../s/0', d: 'x' }, { s: 's/0/..', d: 'x' }, { s: 'f/0/..', d: 'x' }, { s: 's/00', d: 'x' }, { s: '/etc', d: 'x' },
    ];
    try {
      for (const mount of forged) {
        await connection.exec('ebp:files abcdefghijklmnop0123');
        const remote = await connection.exec('echo never', { env: { EBP_FILES: JSON.stringify({ t: 'abcdefghijklmnop0123', m: [mount] }) } });
        let out = '';
        let err = '';
        remote.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
        remote.stderr.on('data', (chunk: Buffer) => { err += chunk.toString(); });
        remote.stdin.end();
        assert.deepEqual(await remote.exit, { kind: 'code', code: 2 }, JSON.stringify(mount));
        assert.equal(out, '');
        assert.match(err, /invalid file sharing request/, JSON.stringify(mount));
      }
    } finally {
      connection.close();
    }
  });
});

describe('sessions are apart, and nothing stays', { skip: SKIP }, () => {
  test('two sessions with different shares cannot see each other\'s', { timeout: 90_000 }, async () => {
    const one = tempDir('one');
    const two = tempDir('two');
    writeFileSync(join(one, 'one.txt'), '1\n');
    writeFileSync(join(two, 'two.txt'), '2\n');
    const first = startIn(client, ['run', '--share', one, host.endpoint, 'sh', '-c', 'ls -R /home/ebp; echo ready; sleep 5']);
    await first.waitFor(/ready/, 30_000);
    const oneName = one.split('/').pop() ?? '';
    const second = await ebpIn(client, ['run', '--share', two, host.endpoint, 'sh', '-c', `ls -R /home/ebp; cat /home/ebp/Shared/${oneName}/one.txt 2>/dev/null || echo no-access; grep -c fuse /proc/self/mountinfo`]);
    assert.equal(second.code, 0, shown(second));
    assert.ok(!second.stdout.includes('one.txt'), shown(second));
    assert.match(second.stdout, /two\.txt/);
    // Its own mount only (one line), and the first session's files are not reachable.
    assert.match(second.stdout, /^no-access\n1\n$/m, shown(second));
    assert.ok(!first.stdout().includes('two.txt'));
    await first.done;
  });

  test('no FUSE mount and no sshfs left after any ending: exit, app killed, client killed, daemon killed', { timeout: 120_000 }, async () => {
    const dir = tempDir('end');
    writeFileSync(join(dir, 'f.txt'), 'x\n');
    const check = async (what: string, daemon: PoolDaemon): Promise<void> => {
      await waitUntil(() => sshfsOf(daemon).length === 0 && stagesOf(daemon).length === 0, 15_000, `no sshfs and no stage left after ${what}`);
      assert.deepEqual(hostFuseMounts(), [], what);
    };
    // 1. The app exits.
    const plain = await ebpIn(client, ['run', '--share', dir, host.endpoint, 'true']);
    assert.equal(plain.code, 0, shown(plain));
    await check('an exit', host);
    // 2. The app is killed.
    const killed = await ebpIn(client, ['run', '--share', dir, host.endpoint, 'sh', '-c', 'kill -KILL $$']);
    assert.equal(killed.code, 137, shown(killed));
    await check('a killed app', host);
    // 3. The client vanishes (kill -9): file operations inside fail fast, then all is gone.
    const name = dir.split('/').pop() ?? '';
    const script = `echo ready; sleep 2; s=$(date +%s); cat /home/ebp/Shared/${name}/f.txt; echo "rc=$? after $(( $(date +%s) - s ))s" > /tmp/log; sleep 30`;
    const vanishing = startIn(client, ['run', '--share', dir, host.endpoint, 'sh', '-c', script]);
    await vanishing.waitFor(/ready/, 30_000);
    assert.ok(sshfsOf(host).length > 0, 'sshfs runs while the session does');
    vanishing.child.kill('SIGKILL');
    await check('the client was killed', host);
    // 4. The host daemon is killed while a session with files runs.
    const other = await startDaemon({ label: 'K', config: hostConfig({ name: 'kappa', policy: 'trusted-only' }) });
    await trustClient(other, client);
    const orphan = startIn(client, ['run', '--share', dir, other.endpoint, 'sh', '-c', 'echo ready; sleep 60']);
    await orphan.waitFor(/ready/, 30_000);
    assert.ok(sshfsOf(other).length > 0);
    await other.kill();
    await waitUntil(() => sshfsOf(other).length === 0, 15_000, 'sshfs gone after the daemon was killed');
    assert.deepEqual(hostFuseMounts(), []);
    await orphan.done;
    // Its stage, an empty folder, is removed when it starts again.
    assert.equal(stagesOf(other).length, 1, 'the killed daemon left its (empty) stage');
    const again = await startDaemon({ label: 'K', stateDir: other.stateDir });
    assert.equal(stagesOf(again).length, 0);
    assert.ok(!existsSync(stagesRoot(again.stateDir, IS_ROOT)), 'and the stages folder with it');
    await again.stop();
    // 5. The host daemon is stopped (SIGTERM) while a session with files runs.
    const stopped = await startDaemon({ label: 'S', config: hostConfig({ name: 'sigma', policy: 'trusted-only' }) });
    await trustClient(stopped, client);
    const ended = startIn(client, ['run', '--share', dir, stopped.endpoint, 'sh', '-c', 'echo ready; sleep 60']);
    await ended.waitFor(/ready/, 30_000);
    assert.ok(sshfsOf(stopped).length > 0);
    await stopped.stop();
    await check('the daemon was stopped', stopped);
    await ended.done;
    await delay(100);
  });
});
