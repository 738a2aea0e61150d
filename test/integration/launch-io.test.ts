// What a launch carries: the app's name and arguments as data (never a shell, never a sandbox
// option), exit statuses and signals both ways, the terminal and its size, 100 MiB of stdin and
// stdout intact, and no environment beyond the locale. Each through both client paths: the CLI
// dialling the peer itself (no local daemon) and the CLI relayed by its own daemon.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { inheritableDescriptors } from '../../src/lib/descriptors.js';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import {
  baseEnv, EBP, ebpIn, inTerminal, pipeThrough, poolCleanup, sessionsOf, sha256, shown, startIn, startLaunchPair, waitUntil, type PoolDaemon,
} from './helpers/pool.js';

const SKIP = IS_ROOT ? false : 'needs root (sandboxes run as the ebp-sandbox user)';
const DAEMON_SECRET = `EBP_TEST_DAEMON_ONLY_${randomBytes(4).toString('hex')}`;

let hostA: PoolDaemon;
let relayB: PoolDaemon;
let direct: string;
/** [path name, client state folder]: the CLI alone, and the CLI with its own daemon running. */
let paths: [string, string][];

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  ({ hostA, relayB, direct } = await startLaunchPair({ a: { [DAEMON_SECRET]: 'leaked' } }));
  paths = [['direct', direct], ['relayed', relayB.stateDir]];
});
after(poolCleanup);

describe('apps that are not shared', { skip: SKIP }, () => {
  test('a clear error naming the app, also for ids with shell metacharacters; nothing runs', { timeout: 90_000 }, async () => {
    const ids = ['nosuchapp', 'echo;id', '$(id)', '`id`', 'echo hi', '../../usr/bin/id', '/usr/bin/id', 'echo|id', 'sh&&id', '*', '~root', "it's"];
    for (const [path, client] of paths) {
      for (const id of ids) {
        const result = await ebpIn(client, ['run', hostA.endpoint, id]);
        assert.ok(result.stderr.includes(`"${id}" is not an app this machine shares`), `${path} ${JSON.stringify(id)}\n${shown(result)}`);
        assert.equal(result.stdout, '', `${path} ${JSON.stringify(id)}: nothing ran`);
        assert.notEqual(result.code, 0, `${path} ${JSON.stringify(id)}\n${shown(result)}`);
      }
    }
  });

  test('the exit status of a launch refused at once is never lost (1 every time, not 255)', { timeout: 90_000 }, async () => {
    // The host writes the refusal, exit-status and close right after accepting the exec
    // request; they often arrive in the same read as the exec reply.
    const failures: string[] = [];
    for (const [path, client] of paths) {
      for (let i = 0; i < 10; i += 1) {
        const result = await ebpIn(client, ['run', hostA.endpoint, 'nosuchapp']);
        if (result.code !== 1) failures.push(`${path} #${i}: ${shown(result)}`);
      }
    }
    assert.equal(failures.length, 0, `${failures.length} of 20 refused launches did not exit 1; the first:\n${failures.slice(0, 2).join('\n')}`);
  });
});

describe('arguments are inert data', { skip: SKIP }, () => {
  const HOSTILE = ['--', '--bind', '/', '/', '$(id)', ';id', 'a\nb', '`uname`', '&&', '|', '>x', "it's", '"q"', '\\', '*', '~', '%f', '%U', '', ' lead', 'tab\there', '-v', '--help', 'ünï©ødé'];

  test('each argument reaches the app as exactly one argv element, verbatim', { timeout: 60_000 }, async () => {
    for (const [path, client] of paths) {
      const result = await ebpIn(client, ['run', hostA.endpoint, 'argv', ...HOSTILE]);
      assert.equal(result.code, 0, `${path}\n${shown(result)}`);
      assert.deepEqual(JSON.parse(result.stdout), HOSTILE, path);
    }
  });

  test('`ebp run A echo -- --bind / /` and friends print verbatim', { timeout: 60_000 }, async () => {
    const cases: [string[], string][] = [
      [['--', '--bind', '/', '/'], '-- --bind / /\n'],
      [['$(id)'], '$(id)\n'],
      [[';id'], ';id\n'],
      [['a\nb'], 'a\nb\n'],
      [['`uname`'], '`uname`\n'],
      [['&&'], '&&\n'],
    ];
    for (const [path, client] of paths) {
      for (const [args, expected] of cases) {
        const result = await ebpIn(client, ['run', hostA.endpoint, 'echo', ...args]);
        assert.equal(result.stdout, expected, `${path} echo ${JSON.stringify(args)}\n${shown(result)}`);
        assert.equal(result.code, 0);
      }
    }
  });

  test('nothing becomes a bwrap option: a --bind argument binds nothing', { timeout: 60_000 }, async () => {
    for (const [path, client] of paths) {
      const result = await ebpIn(client, ['run', hostA.endpoint, 'sh', '-c', 'ls -d /x 2>&1; cat /etc/hostname; echo "$@"', '--', '--bind', '/', '/x', '--uid', '0']);
      assert.match(result.stdout, /No such file or directory/, `${path}: /x does not exist in the sandbox\n${shown(result)}`);
      assert.match(result.stdout, /^sandbox$/m, `${path}: still the sandbox`);
      assert.match(result.stdout, /^--bind \/ \/x --uid 0$/m);
      assert.equal(result.code, 0);
    }
  });
});

describe('exit statuses and signals', { skip: SKIP }, () => {
  // With stdin, stdout and stderr all on /dev/null the local daemon takes all three, and `ebp run`
  // exits the moment the status comes in (cli/attach.ts): the same statuses as through pipes.
  test('every descriptor on /dev/null, relayed: the statuses are the ones that come through pipes', { timeout: 60_000 }, async () => {
    const commands = [['true'], ['sh', '-c', 'exit 7'], ['sh', '-c', 'kill -TERM $$'], ['not-shared-here']];
    for (const command of commands) {
      const argv = ['--state-dir', relayB.stateDir, 'run', hostA.endpoint, ...command];
      const quiet = spawnSync(process.execPath, [EBP, ...argv], { stdio: 'ignore', timeout: 30_000, env: baseEnv() });
      const piped = await ebpIn(relayB.stateDir, argv.slice(2));
      assert.equal(quiet.status, piped.code, `${command.join(' ')}: ${shown(piped)}`);
    }
    const statuses = await Promise.all(commands.slice(0, 3).map(async (command) => (await ebpIn(relayB.stateDir, ['run', hostA.endpoint, ...command])).code));
    assert.deepEqual(statuses, [0, 7, 143]);
  });

  test('the app\'s exit status comes back: sh -c "exit 7" → 7', { timeout: 60_000 }, async () => {
    for (const [path, client] of paths) {
      const result = await ebpIn(client, ['run', hostA.endpoint, 'sh', '-c', 'exit 7']);
      assert.equal(result.code, 7, `${path}\n${shown(result)}`);
    }
  });

  test('an app killed by a signal: sh -c "kill -TERM $$" → 143', { timeout: 60_000 }, async () => {
    for (const [path, client] of paths) {
      const result = await ebpIn(client, ['run', hostA.endpoint, 'sh', '-c', 'kill -TERM $$']);
      assert.equal(result.code, 143, `${path}\n${shown(result)}`);
    }
  });

  const TRAP = 'trap "echo got-int; exit 42" INT; echo ready; while :; do sleep 0.1; done';

  test('SIGINT sent to the `ebp run` client (no terminal, stdin open) reaches the app', { timeout: 60_000 }, async () => {
    for (const [path, client] of paths) {
      const launch = startIn(client, ['run', hostA.endpoint, 'sh', '-c', TRAP], { input: '', killAfterMs: 20_000 });
      await launch.waitFor(/ready/);
      launch.child.kill('SIGINT');
      const result = await launch.done;
      assert.match(result.stdout, /got-int/, `${path}\n${shown(result)}`);
      assert.equal(result.code, 42, `${path}\n${shown(result)}`);
    }
  });

  test('SIGINT reaches the app also when the client\'s stdin is already at its end (</dev/null)', { timeout: 60_000 }, async () => {
    for (const [path, client] of paths) {
      const launch = startIn(client, ['run', hostA.endpoint, 'sh', '-c', TRAP], { killAfterMs: 8000 });
      await launch.waitFor(/ready/);
      launch.child.kill('SIGINT');
      const result = await launch.done;
      assert.match(result.stdout, /got-int/, `${path}: the INT never reached the app (the client was killed after 8 s)\n${shown(result)}`);
      assert.equal(result.code, 42, `${path}\n${shown(result)}`);
    }
  });
});

describe('terminal', { skip: SKIP }, () => {
  test('`ebp run A sh` in a terminal: the app sees the size, and a resize', { timeout: 90_000 }, async () => {
    for (const [path, client] of paths) {
      const { screen, exit } = await inTerminal(
        [process.execPath, EBP, '--state-dir', client, 'run', hostA.endpoint, 'sh'],
        [
          ['$ ', 'stty size; echo T=$TERM\\r'],
          ['T=xterm', '@resize 50 132'],
          ['T=xterm', 'sleep 1; stty size\\r'],
          ['50 132', 'exit 7\\r'],
        ],
        { rows: 33, cols: 91 },
      );
      assert.match(screen, /33 91/, `${path}: the start size\n${screen}`);
      assert.match(screen, /T=xterm-256color/, `${path}: TERM passes with a terminal`);
      assert.match(screen, /50 132/, `${path}: the new size\n${screen}`);
      assert.equal(exit, 7, `${path}\n${screen}`);
    }
  });

  test('another launch made while a terminal is open gets none of its descriptors (the pty master)', { timeout: 90_000 }, async () => {
    const open = inTerminal(
      [process.execPath, EBP, '--state-dir', direct, 'run', hostA.endpoint, 'sh'],
      [['$ ', 'echo OPEN; sleep 4; exit 3\\r']],
      { rows: 24, cols: 80 },
    );
    // The terminal's session is running once host A lists it.
    await waitUntil(async () => (await sessionsOf(hostA)).length > 0, 20_000, 'the terminal session on host A');
    // The cause, looked at directly: every descriptor of daemon A above stderr is close-on-exec.
    const inheritable = inheritableDescriptors(hostA.pid);
    assert.deepEqual(inheritable, [], 'descriptors of daemon A that any child it starts would inherit');
    for (const [path, client] of paths) {
      const listing = await ebpIn(client, ['run', hostA.endpoint, 'sh', '-c', 'ls /proc/self/fd']);
      assert.equal(listing.code, 0, `${path}: ${listing.stderr}`);
      assert.equal(listing.stdout, '0\n1\n2\n3\n', `${path}: fd 3 is ls's own; anything else came from the daemon`);
    }
    const { screen, exit } = await open;
    assert.match(screen, /OPEN/, screen);
    assert.equal(exit, 3, screen);
  });
});

/** The terminals (/dev/pts/N) a process has open, with how: 'r' (read only), 'w' (write only) or 'rw'. */
function terminalsOpen(pid: number): string[] {
  const modes = ['r', 'w', 'rw'];
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!target.startsWith('/dev/pts/')) return [];
      const flags = Number.parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0', 8);
      return [`${target} ${modes[flags & 3] ?? '?'}`];
    } catch {
      return [];
    }
  });
}

describe('terminal through the client\'s daemon', { skip: SKIP }, () => {
  test('the daemon reads the keys from the person\'s terminal itself, and lets go of it when the app ends', { timeout: 90_000 }, async () => {
    const open = inTerminal(
      [process.execPath, EBP, '--state-dir', relayB.stateDir, 'run', hostA.endpoint, 'sh'],
      [['$ ', 'echo TYPED; sleep 3; exit 4\\r']],
      { rows: 24, cols: 80 },
    );
    // While the app runs: daemon B holds the terminal for reading (the keys skip the CLI).
    const held = await waitUntil(() => {
      const open = terminalsOpen(relayB.pid);
      return open.some((line) => line.endsWith(' r')) ? open : undefined;
    }, 20_000, 'daemon B reading the terminal');
    assert.ok(held.some((line) => line.endsWith(' w')), `the output goes straight to the terminal too: ${held.join(', ')}`);
    const { screen, exit } = await open;
    assert.match(screen, /TYPED/, screen);
    assert.equal(exit, 4, screen);
    // Before the CLI exits (and the shell reads the terminal again), the daemon has let go.
    assert.deepEqual(terminalsOpen(relayB.pid), [], 'terminals daemon B still holds');
  });

  test('a launch from the terminal\'s background: the daemon leaves the keys to the shell', { timeout: 90_000 }, async () => {
    // Job control on: the launch runs as a background job of its own process group, stdin still
    // the terminal. Taking it there would steal the keys typed at the shell.
    const launch = [process.execPath, EBP, '--state-dir', relayB.stateDir, 'run', hostA.endpoint, 'sh', '-c', 'sleep 3'].map((word) => `'${word}'`).join(' ');
    const running = inTerminal(
      ['sh', '-c', `set -m; ${launch} > /dev/null & sleep 5; kill -9 %1 2>/dev/null; echo BACKGROUND-DONE`],
      [],
      { rows: 24, cols: 80 },
    );
    await waitUntil(async () => (await sessionsOf(hostA)).length > 0, 20_000, 'the background launch on host A');
    assert.deepEqual(terminalsOpen(relayB.pid).filter((line) => line.endsWith(' r')), [], 'terminals daemon B reads');
    const { screen } = await running;
    assert.match(screen, /BACKGROUND-DONE/, screen);
    assert.deepEqual(terminalsOpen(relayB.pid), [], 'terminals daemon B still holds');
  });
});

describe('100 MiB through stdin and back', { skip: SKIP }, () => {
  const SIZE = 100 * 1024 * 1024;
  let data: Buffer;
  let expected: string;
  before(() => {
    data = randomBytes(SIZE);
    expected = sha256(data);
  });

  test('direct (no local daemon): `ebp run A cat` returns every byte in order', { timeout: 180_000 }, async (t) => {
    const result = await pipeThrough(direct, hostA.endpoint, ['cat'], data);
    t.diagnostic(`direct: ${SIZE} bytes round trip in ${Math.round(result.ms)} ms`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.bytes, SIZE);
    assert.equal(result.hash, expected);
  });

  test('relayed by the client\'s own daemon: every byte in order', { timeout: 180_000 }, async (t) => {
    const result = await pipeThrough(relayB.stateDir, hostA.endpoint, ['cat'], data);
    t.diagnostic(`relayed: ${SIZE} bytes round trip in ${Math.round(result.ms)} ms`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.bytes, SIZE);
    assert.equal(result.hash, expected);
  });
});

describe('environment', { skip: SKIP }, () => {
  test('only LANG and LC_* pass from the client; nothing of the host daemon\'s', { timeout: 60_000 }, async () => {
    for (const [path, client] of paths) {
      const result = await ebpIn(client, ['run', hostA.endpoint, 'env'], {
        env: { ...process.env, EBP_STATE_DIR: '', LANG: 'C.UTF-8', LC_TIME: 'C', LD_PRELOAD: 'x', FOO_SECRET: 'bar', PATH: `/nonexistent-ebp:${process.env['PATH'] ?? ''}` },
      });
      assert.equal(result.code, 0, `${path}\n${shown(result)}`);
      const env = new Map(result.stdout.split('\n').filter((line) => line.includes('=')).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
      assert.equal(env.get('LANG'), 'C.UTF-8', `${path}: LANG passes\n${result.stdout}`);
      assert.equal(env.get('LC_TIME'), 'C', `${path}: LC_* passes`);
      assert.ok(!env.has('LD_PRELOAD'), `${path}: LD_PRELOAD must not pass\n${result.stdout}`);
      assert.ok(!env.has('FOO_SECRET'), `${path}: other variables must not pass`);
      assert.ok(!(env.get('PATH') ?? '').includes('nonexistent-ebp'), `${path}: the client's PATH must not pass`);
      assert.ok(!env.has(DAEMON_SECRET), `${path}: the host daemon's environment must not pass`);
      assert.ok(!env.has('TERM'), `${path}: no TERM without a terminal`);
    }
  });
});

describe('the shell\'s own files and pipes', { skip: SKIP }, () => {
  // Through its daemon, the CLI's stdio is opened by the daemon itself where that keeps its
  // meaning (stdin from a pipe or a file read from its start, /dev/null), and relayed by the CLI
  // otherwise (a file read from an offset, output to files and pipes): both must give exactly
  // what a local program would.
  const SIZE = 3 * 1024 * 1024;
  const SCRIPT = [
    'set -e',
    'ebp() { "$NODE" "$EBP" --state-dir "$STATE" run "$PEER" "$@"; }',
    'ebp cat < "$DIR/in" >> "$DIR/appended"',
    '{ dd bs=1000 count=1 of=/dev/null 2>/dev/null; ebp cat; echo tail; } < "$DIR/in" > "$DIR/offset"',
    'cat "$DIR/in" | ebp sh -c \'cat; echo E >&2; exit 3\' 2>> "$DIR/err" | cat > "$DIR/piped" || echo "status $?" >> "$DIR/err"',
    'ebp cat < /dev/null > "$DIR/empty"',
  ].join('\n');

  test('a file on stdin, appended output, pipes both ways, an offset: the same bytes as locally', { timeout: 120_000 }, async () => {
    const { execFile } = await import('node:child_process');
    const { readFileSync, writeFileSync } = await import('node:fs');
    const { tempDir } = await import('./helpers/pool.js');
    const data = randomBytes(SIZE);
    for (const [path, client] of paths) {
      const dir = tempDir(`stdio-${path}`);
      writeFileSync(`${dir}/in`, data);
      writeFileSync(`${dir}/appended`, 'head\n');
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = execFile('/bin/sh', ['-c', SCRIPT], {
          env: { ...process.env, NODE: process.execPath, EBP, STATE: client, PEER: hostA.endpoint, DIR: dir, EBP_STATE_DIR: '' },
          timeout: 100_000,
        }, (error, _stdout, stderr) => { resolve({ code: error === null ? 0 : (typeof error.code === 'number' ? error.code : -1), stderr }); });
        child.stdin?.end();
      });
      assert.equal(result.code, 0, `${path}: ${result.stderr}`);
      assert.equal(sha256(readFileSync(`${dir}/appended`)), sha256(Buffer.concat([Buffer.from('head\n'), data])), `${path}: appended after the existing line`);
      assert.equal(sha256(readFileSync(`${dir}/offset`)), sha256(Buffer.concat([data.subarray(1000), Buffer.from('tail\n')])), `${path}: read on from the shell's offset, and the shell wrote on after the output`);
      assert.equal(sha256(readFileSync(`${dir}/piped`)), sha256(data), `${path}: through pipes`);
      assert.equal(readFileSync(`${dir}/err`, 'utf8'), 'E\n', `${path}: stderr apart (a pipeline's status is its last command's)`);
      assert.equal(readFileSync(`${dir}/empty`, 'utf8'), '', `${path}: /dev/null on stdin`);
    }
  });
});

describe('a reader that goes away', { skip: SKIP }, () => {
  test('`ebp run A sh -c "yes" | head -2` ends by itself, also with stdin still flowing', { timeout: 120_000 }, async () => {
    const { execFile } = await import('node:child_process');
    const SCRIPT = [
      'ebp() { "$NODE" "$EBP" --state-dir "$STATE" run "$PEER" "$@"; }',
      'ebp sh -c \'while :; do echo y; done\' 2>/dev/null | head -2',
      'ebp cat < /dev/zero 2>/dev/null | head -c 1000 | wc -c',
    ].join('\n');
    for (const [path, client] of paths) {
      const began = Date.now();
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile('/bin/sh', ['-c', SCRIPT], {
          env: { ...process.env, NODE: process.execPath, EBP, STATE: client, PEER: hostA.endpoint, EBP_STATE_DIR: '' },
          timeout: 60_000, killSignal: 'SIGKILL',
        }, (error, out) => { if (error !== null && error.killed === true) reject(new Error(`${path}: still running after 60 s`)); else resolve(out); });
      });
      assert.equal(stdout.replace(/ /g, ''), 'y\ny\n1000\n', path);
      assert.ok(Date.now() - began < 30_000, `${path}: took ${Date.now() - began} ms`);
    }
  });

  // Node writes to a pipe asynchronously: the output it still held when `ebp run` exited was lost.
  // (A pipe, as a shell makes it: Node's own child stdio would be a socket pair.)
  test('a slow reader on a pipe still gets every byte: ebp waits for it before exiting', { timeout: 120_000 }, async () => {
    const { execFile } = await import('node:child_process');
    // 3 MiB at about 1 MB/s: the app is done long before the reader, and more than the SSH
    // window (2 MiB) is still on its way when the status comes.
    const SIZE = 3 * 1024 * 1024;
    const SLOW = 'import os, time\nn = 0\nwhile True:\n    b = os.read(0, 16384)\n    if not b: break\n    n += len(b)\n    time.sleep(0.015)\nprint(n)';
    const SCRIPT = '"$NODE" "$EBP" --state-dir "$STATE" run "$PEER" sh -c "head -c $SIZE /dev/zero" | python3 -c "$SLOW"; echo "status ${PIPESTATUS[0]}"';
    for (const [path, client] of paths) {
      for (let round = 0; round < 2; round += 1) {
        const stdout = await new Promise<string>((resolve, reject) => {
          execFile('/bin/bash', ['-c', SCRIPT], {
            env: { ...baseEnv(), NODE: process.execPath, EBP, STATE: client, PEER: hostA.endpoint, SLOW, SIZE: String(SIZE) },
            timeout: 60_000, killSignal: 'SIGKILL',
          }, (error, out) => { if (error !== null) reject(new Error(`${path}: ${error.message}`)); else resolve(out); });
        });
        assert.equal(stdout, `${SIZE}\nstatus 0\n`, `${path}, round ${round + 1}`);
      }
    }
  });
});
