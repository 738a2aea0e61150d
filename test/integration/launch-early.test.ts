// The early launch (cli/early-run.ts): a plain `ebp run` whose descriptors the local daemon
// opens itself goes to the daemon and ends with the app's status without the run command's code
// ever being read. Real daemons on loopback; what the CLI read is seen with strace. Whatever the
// early path does not know hands over to the run command on the same connection: an error
// answer, descriptors the daemon left on the relay, a session that breaks.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openPty, type Pty } from '../../src/lib/pty.js';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import {
  baseEnv, EBP, fdCount, hostConfig, loggedSessionIds, poolCleanup, sessionsOf, startDaemon, startLaunchPair, trustClient, waitUntil, type PoolDaemon,
} from './helpers/pool.js';

const HAS_STRACE = spawnSync('strace', ['-V']).status === 0;
const SKIP = !IS_ROOT ? 'needs root (sandboxes run as the ebp-sandbox user)' : !HAS_STRACE ? 'needs strace' : false;

let hostA: PoolDaemon;
let relayB: PoolDaemon;
let direct: string;
const scratch = mkdtempSync(join(tmpdir(), 'ebp-early-'));

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  ({ hostA, relayB, direct } = await startLaunchPair());
});
after(async () => {
  rmSync(scratch, { recursive: true, force: true });
  await poolCleanup();
});

interface Launch {
  readonly child: ChildProcess;
  /** What the terminal showed so far. */
  screen(): string;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The files the CLI opened (strace), once it has ended. */
  opened(): string[];
  /** ebp's own pid (strace's child). */
  ebpPid(): number;
}

/**
 * `ebp --state-dir B run ARGS` under strace, with stdin from `stdin` (a descriptor; default
 * /dev/null) and stdout and stderr on a terminal that is not its controlling one (so that stdin
 * decides: no terminal launch) or on /dev/null.
 */
function launch(args: readonly string[], options: { stdin?: number; output?: 'terminal' | 'null'; client?: string } = {}): Launch {
  const trace = join(scratch, `strace-${Math.random().toString(36).slice(2)}.txt`);
  let pty: Pty | undefined;
  const devNull = openSync('/dev/null', 'r+');
  const stdin = options.stdin ?? devNull;
  let output: number = devNull;
  if (options.output !== 'null') {
    pty = openPty({ cols: 80, rows: 24 });
    output = pty.slaveFd;
  }
  const stdio: StdioOptions = [stdin, output, output];
  const child = spawn('strace', ['-f', '-qq', '-e', 'trace=openat', '-o', trace, process.execPath, EBP, '--state-dir', options.client ?? relayB.stateDir, 'run', ...args], { stdio, env: baseEnv() });
  closeSync(devNull);
  pty?.closeSlave();
  let screen = '';
  pty?.master.on('data', (chunk: Buffer) => { screen += chunk.toString(); });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      clearTimeout(killer);
      // What the terminal still holds arrives once the app's side is closed.
      setTimeout(() => {
        pty?.master.destroy();
        resolve({ code, signal });
      }, 200);
    });
  });
  return {
    child,
    screen: () => screen,
    exit,
    opened: () => [...readFileSync(trace, 'utf8').matchAll(/openat\([^"]*"([^"]+)"/g)].map((match) => match[1] ?? ''),
    ebpPid: () => {
      const pid = Number(readFileSync(`/proc/${String(child.pid)}/task/${String(child.pid)}/children`, 'utf8').trim().split(/\s+/)[0]);
      assert.ok(Number.isInteger(pid) && pid > 0, 'strace has started ebp');
      return pid;
    },
  };
}

/** The CLI ran the run command (its bundle or its modules), not only the early launch. */
function ranRunCommand(opened: readonly string[]): boolean {
  return opened.some((path) => path.endsWith('/ebp-run.cjs') || path.endsWith('/ebp.cjs') || path.includes('/dist/src/cli/'));
}

describe('a plain launch goes early', { skip: SKIP }, () => {
  test('output to a terminal: the app runs once, its output and status come back, the run command is never read', { timeout: 90_000 }, async () => {
    const before = loggedSessionIds(hostA).length;
    const run = launch([hostA.endpoint, 'sh', '-c', 'echo early-$((6*7)); exit 7']);
    const { code } = await run.exit;
    assert.equal(code, 7, run.screen());
    assert.match(run.screen(), /early-42/);
    assert.equal(ranRunCommand(run.opened()), false, `the early launch loaded the run command:\n${run.opened().filter((path) => path.includes('dist')).join('\n')}`);
    await waitUntil(() => loggedSessionIds(hostA).length === before + 1 || undefined, 10_000, 'one session on A');
    assert.equal(loggedSessionIds(hostA).length, before + 1, 'exactly one launch reached A');
  });

  test('a refusal by the host (an app it does not share) comes back as its message and status 1', { timeout: 60_000 }, async () => {
    const before = loggedSessionIds(hostA).length;
    const run = launch([hostA.endpoint, 'nosuchapp']);
    const { code } = await run.exit;
    assert.equal(code, 1, run.screen());
    assert.match(run.screen(), /"nosuchapp" is not an app this machine shares/);
    assert.equal(ranRunCommand(run.opened()), false);
    assert.equal(loggedSessionIds(hostA).length, before, 'nothing ran');
  });

  test('everything to /dev/null (a script, the benchmark): the status, without the run command', { timeout: 60_000 }, async () => {
    const run = launch([hostA.endpoint, 'sh', '-c', 'exit 3'], { output: 'null' });
    assert.equal((await run.exit).code, 3);
    assert.equal(ranRunCommand(run.opened()), false);
  });

  test('input from a file reaches the app (the daemon reads it), the app\'s verdict is the status', { timeout: 60_000 }, async () => {
    const file = join(scratch, 'input.txt');
    writeFileSync(file, 'pipe-line\n');
    const fd = openSync(file, 'r');
    const run = launch([hostA.endpoint, 'sh', '-c', 'read line; echo "got:$line"; test "$line" = pipe-line'], { stdin: fd });
    closeSync(fd);
    const { code } = await run.exit;
    assert.match(run.screen(), /got:pipe-line/);
    assert.equal(code, 0, run.screen());
    assert.equal(ranRunCommand(run.opened()), false);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} sent to ebp reaches the app, which decides the status`, { timeout: 60_000 }, async () => {
      const run = launch([hostA.endpoint, 'sh', '-c', `trap 'echo caught; exit 42' ${signal.slice(3)}; echo ready; while :; do sleep 0.1; done`]);
      await waitUntil(() => run.screen().includes('ready') || undefined, 20_000, 'the app to start');
      process.kill(run.ebpPid(), signal);
      const { code } = await run.exit;
      assert.equal(code, 42, run.screen());
      assert.match(run.screen(), /caught/);
      assert.equal(ranRunCommand(run.opened()), false);
    });
  }
});

describe('early launches leave nothing behind', { skip: SKIP }, () => {
  const COUNT = 200;

  test(`${COUNT} early launches in a row: every status right; the daemons' descriptors and sessions as before`, { timeout: 180_000 }, async () => {
    const plain = async (i: number): Promise<number | null> => {
      const devNull = openSync('/dev/null', 'r+');
      const child = spawn(process.execPath, [EBP, '--state-dir', relayB.stateDir, 'run', hostA.endpoint, 'sh', '-c', `exit ${i % 7}`], { stdio: [devNull, devNull, devNull], env: baseEnv() });
      closeSync(devNull);
      return new Promise((resolve) => { child.once('exit', resolve); });
    };
    // Warm-up: the pooled connection, spares, lazily made cgroup bases.
    for (let i = 0; i < 5; i += 1) assert.equal(await plain(i), i % 7);
    await waitUntil(async () => (await sessionsOf(hostA)).length === 0 || undefined, 10_000, 'A idle');
    const fdsA = fdCount(hostA.pid);
    const fdsB = fdCount(relayB.pid);
    const wrong: string[] = [];
    for (let i = 0; i < COUNT; i += 1) {
      const code = await plain(i);
      if (code !== i % 7) wrong.push(`#${i}: ${String(code)}`);
    }
    assert.deepEqual(wrong, [], 'each launch ends with its own status');
    await waitUntil(async () => (await sessionsOf(hostA)).length === 0 || undefined, 10_000, 'A\'s sessions to end');
    // Within a few descriptors: a spare being made, the pooled session opened ahead.
    await waitUntil(() => (fdCount(hostA.pid) <= fdsA + 4 && fdCount(relayB.pid) <= fdsB + 4) || undefined, 10_000,
      `descriptors back near A ${fdsA} / B ${fdsB} (now ${fdCount(hostA.pid)} / ${fdCount(relayB.pid)})`);
  });
});

describe('what the early launch does not know goes to the run command, on the same connection', { skip: SKIP }, () => {
  test('an error answer from the daemon (a peer it does not know): the run command explains it', { timeout: 60_000 }, async () => {
    const run = launch(['no-such-peer-here', 'true']);
    const { code } = await run.exit;
    assert.notEqual(code, 0, run.screen());
    assert.match(run.screen(), /ebp: .*no-such-peer-here/);
    assert.equal(ranRunCommand(run.opened()), true);
  });

  test('stdin the daemon leaves on the relay (a file read part-way): the run command relays it, from where ebp stood', { timeout: 60_000 }, async () => {
    const file = join(scratch, 'partly-read.txt');
    writeFileSync(file, 'abc-rest-of-it\n');
    const fd = openSync(file, 'r');
    readSync(fd, Buffer.alloc(4), 0, 4, null);
    const before = loggedSessionIds(hostA).length;
    const run = launch([hostA.endpoint, 'cat'], { stdin: fd });
    closeSync(fd);
    const { code } = await run.exit;
    assert.equal(code, 0, run.screen());
    assert.match(run.screen(), /^rest-of-it\r?\n$/);
    assert.equal(ranRunCommand(run.opened()), true, 'handed over');
    await waitUntil(() => loggedSessionIds(hostA).length === before + 1 || undefined, 10_000, 'one session on A');
    assert.equal(loggedSessionIds(hostA).length, before + 1, 'the launch was sent once');
  });

  test('the host dies mid-session: exit 255 and the run command says so', { timeout: 90_000 }, async () => {
    const doomed = await startDaemon({ label: 'D', config: hostConfig({ name: 'doomed', policy: 'trusted-only' }) });
    await trustClient(doomed, relayB.stateDir);
    const run = launch([doomed.endpoint, 'sh', '-c', 'echo ready; sleep 30']);
    await waitUntil(() => run.screen().includes('ready') || undefined, 20_000, 'the app to start');
    await doomed.kill();
    const { code } = await run.exit;
    assert.equal(code, 255, run.screen());
    assert.match(run.screen(), /ebp: .*(broke|went away|closed|lost|reset)/i);
    assert.ok(run.screen().includes(doomed.endpoint), `the message names the peer\n${run.screen()}`);
    assert.equal(ranRunCommand(run.opened()), true);
  });

  test('no daemon: the CLI dials the peer itself, as before', { timeout: 60_000 }, async () => {
    const run = launch([hostA.endpoint, 'sh', '-c', 'echo direct; exit 4'], { client: direct });
    const { code } = await run.exit;
    assert.equal(code, 4, run.screen());
    assert.match(run.screen(), /direct/);
  });
});
