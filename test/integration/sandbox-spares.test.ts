// Sandboxes made ahead of their launch (sandbox/runner.ts prepareSandbox, sandbox/spares.ts), with
// real bwrap and cgroups: the command handed over runs exactly as given (hostile words stay
// data), exit statuses and the clock are the launch's own, a spare serves one launch only and is
// as closed as a fresh sandbox, and nothing of a discarded spare is left.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createEngine, type SandboxEngine } from '../../src/sandbox/engine.js';
import { hostEtcEntries, openHostEtcFiles } from '../../src/sandbox/etc.js';
import type { SandboxPolicy } from '../../src/sandbox/policy.js';
import { buildPolicy, type SandboxRequest } from '../../src/sandbox/request.js';
import { prepareSandbox, startSandbox, type SandboxHandle } from '../../src/sandbox/runner.js';
import { SpareSandboxes } from '../../src/sandbox/spares.js';
import { setupOnce } from './helpers/ebp.js';

const T = { timeout: 60_000 } as const;
const SKIP = process.getuid?.() === 0 ? false : 'needs root (sandboxes run as the ebp-sandbox user)';

let engine: SandboxEngine;

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  engine = await createEngine();
});

/** Marks the environment of this file's sandboxes: their processes are told apart from others'. */
const TAG = `spare-test-${process.pid}-${Date.now()}`;

function policy(request: Partial<SandboxRequest> = {}): SandboxPolicy {
  const built = buildPolicy({ command: ['true'], ...request }, engine.identity);
  return { ...built, env: { ...built.env, EBP_TEST_TAG: TAG } };
}

async function output(handle: SandboxHandle): Promise<{ code: number; reason: string; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  handle.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  handle.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  handle.stdin?.end();
  const exit = await handle.exited;
  return { code: exit.code, reason: exit.reason, stdout, stderr };
}

const PIPES = { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' } as const;

/** Host processes of this file's sandboxes: their environment holds TAG (read from /proc). */
function ourProcesses(): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(`EBP_TEST_TAG=${TAG}`)) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

async function noneOfOurs(): Promise<void> {
  for (let tries = 0; tries < 50 && ourProcesses().length > 0; tries += 1) await delay(100);
  assert.deepEqual(ourProcesses(), []);
}

describe('a prepared sandbox', { skip: SKIP }, () => {
  test('runs exactly the words it is given: quotes, $(), newlines, a leading dash and the protocol\'s own letters stay data', T, async () => {
    const prepared = await prepareSandbox(policy(), { engine, ...PIPES });
    const words = ['a b', 'it\'s', '$(touch /tmp/owned)', '`id`', 'line\nbreak', '-n', 'X', 'A', 'E=1', '', '*'];
    const handle = prepared.start(['sh', '-c', 'printf "%s|" "$@"; printf "%s:%s" "$LANG" "$EBP_SPARE_TEST"; ls /tmp', 'sh', ...words], { LANG: 'C.UTF-8', EBP_SPARE_TEST: 'x y' });
    const result = await output(handle);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${words.map((word) => `${word}|`).join('')}C.UTF-8:x y`, 'every word as given, nothing run (/tmp is empty)');
  });

  test('the command\'s exit status is the launch\'s: its own, 127 not found, 126 not executable', T, async () => {
    const cases: [string[], number][] = [[['sh', '-c', 'exit 7'], 7], [['no-such-program-here'], 127], [['/etc/hostname'], 126]];
    for (const [command, expected] of cases) {
      const prepared = await prepareSandbox(policy(), { engine, ...PIPES });
      const result = await output(prepared.start(command, {}));
      assert.deepEqual([result.code, result.reason], [expected, 'exited'], `${command.join(' ')}: ${result.stderr}`);
    }
  });

  test('how it ended is told as soon as the command is gone (`ended`), and the record (`exited`) agrees, counters added', T, async () => {
    const hog = 'a=x; while :; do a=$a$a$a$a; done';
    const cases: { command: string[]; limits?: Partial<SandboxRequest>; code: number; reason: string }[] = [
      { command: ['true'], code: 0, reason: 'exited' },
      { command: ['sh', '-c', 'echo out; exit 7'], code: 7, reason: 'exited' },
      { command: ['sh', '-c', 'kill -TERM $$'], code: 143, reason: 'signaled' },
      { command: ['sh', '-c', hog], limits: { memoryBytes: 32 * 1024 ** 2 }, code: 137, reason: 'oom' },
    ];
    for (const { command, limits, code, reason } of cases) {
      for (const ahead of [false, true]) {
        const made = policy({ ...limits, command });
        const handle = ahead ? (await prepareSandbox(made, { engine, ...PIPES })).start(command, {}) : await startSandbox(made, { engine, ...PIPES });
        const order: string[] = [];
        const ended = handle.ended.then((exit) => { order.push('ended'); return exit; });
        const result = await output(handle);
        order.push('exited');
        const told = await ended;
        const what = `${command.join(' ')}${ahead ? ' (made ahead)' : ''}`;
        assert.deepEqual(order, ['ended', 'exited'], what);
        assert.deepEqual([told.code, told.reason], [code, reason], what);
        assert.deepEqual([result.code, result.reason], [code, reason], what);
        if (code === 7) assert.equal(result.stdout, 'out\n', what);
        const recorded = await handle.exited;
        assert.ok(recorded.stats !== undefined && recorded.stats.memoryPeakBytes > 0, `${what}: the record has the cgroup's counters`);
      }
    }
  });

  test('serves one launch only; a word with a NUL, a bad or the shim\'s own variable name, a command with a leading dash are refused before anything runs', T, async () => {
    const prepared = await prepareSandbox(policy(), { engine, ...PIPES });
    assert.throws(() => prepared.start(['echo', 'a\0b'], {}), /NUL/);
    assert.throws(() => prepared.start(['echo'], { 'BAD NAME': 'x' }), /invalid environment variable name/);
    assert.throws(() => prepared.start(['echo'], { ebp_go: '1' }), /"ebp_go" is the waiting shim's own/);
    assert.throws(() => prepared.start(['echo'], { IFS: ' ' }), /"IFS" is the waiting shim's own/);
    assert.throws(() => prepared.start(['-echo'], {}), /starts with a dash/);
    const handle = prepared.start(['echo', 'once'], {});
    assert.throws(() => prepared.start(['echo', 'twice'], {}), /no longer waiting/);
    assert.equal((await output(handle)).stdout, 'once\n');
  });

  test('is as closed as a fresh sandbox: its own pid namespace, user, host name, no network, /usr read-only', T, async () => {
    const prepared = await prepareSandbox(policy(), { engine, ...PIPES });
    // Made ahead and then used later: what it sees is decided by its policy, not by the moment.
    await delay(200);
    const script = 'id -u; hostname; ls /proc | grep -c "^[0-9]"; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; touch /usr/owned 2>/dev/null && echo writable || echo read-only';
    const result = await output(prepared.start(['sh', '-c', script], {}));
    assert.equal(result.code, 0, result.stderr);
    const [uid, host, count, ...rest] = result.stdout.trim().split('\n');
    assert.equal(uid, '1000');
    assert.equal(host, 'sandbox');
    // bwrap's pid 1, the shell, and the pipeline's commands: nothing of the host.
    assert.ok(Number(count) <= 6, `${count} processes visible`);
    assert.deepEqual(rest, ['lo', 'read-only']);
  });

  test('its clock starts at the launch: a timeout counts from there, and so does the duration', T, async () => {
    const prepared = await prepareSandbox({ ...policy(), timeoutMs: 1500 }, { engine, ...PIPES });
    await delay(2000);
    const quick = await prepared.start(['sleep', '0.2'], {}).exited;
    assert.deepEqual([quick.code, quick.reason], [0, 'exited'], 'made 2 s ago, yet not timed out');
    assert.ok(quick.durationMs < 1500, `duration ${quick.durationMs} ms counts from the launch`);
    const slow = await prepareSandbox({ ...policy(), timeoutMs: 1500 }, { engine, ...PIPES });
    const timedOut = await slow.start(['sleep', '30'], {}).exited;
    assert.deepEqual([timedOut.code, timedOut.reason], [124, 'timeout']);
  });

  test('discarded unused, it runs nothing and leaves no process', T, async () => {
    await noneOfOurs();
    const prepared = await prepareSandbox(policy(), { engine, ...PIPES });
    assert.ok(ourProcesses().length >= 1, 'positive control: the waiting sandbox is seen');
    await prepared.discard();
    await prepared.exited;
    assert.throws(() => prepared.start(['true'], {}), /no longer waiting/);
    await noneOfOurs();
  });
});

describe('spares', { skip: SKIP }, () => {
  let spares: SpareSandboxes;
  // Undefined when no test of the suite ran (a run filtered by name).
  after(async () => { await (spares as SpareSandboxes | undefined)?.close(); });

  test('the next launch with the same policy runs in the spare made for it, and a later one in a new sandbox', T, async () => {
    spares = new SpareSandboxes({ engine, max: 2 });
    const base = policy({ env: { LANG: 'C.UTF-8' } });
    assert.equal(await spares.start(base), undefined, 'nothing made yet');
    spares.refill(base);
    assert.equal(spares.size, 1);
    // The first launch leaves a mark in its /tmp; the next must not see it.
    const first = (await spares.start({ ...base, command: ['sh', '-c', 'touch /tmp/mark; echo "$LANG"; ls /tmp'] }))?.handle;
    assert.ok(first !== undefined, 'the spare served the launch');
    assert.equal((await output(first)).stdout, 'C.UTF-8\nmark\n');
    assert.equal(spares.size, 0);
    assert.equal(await spares.start(base), undefined, 'a spare serves one launch only');
    spares.refill(base);
    const second = (await spares.start({ ...base, command: ['ls', '-A', '/tmp'] }))?.handle;
    assert.ok(second !== undefined);
    assert.notEqual(second.id, first.id);
    assert.equal((await output(second)).stdout, '', 'a fresh sandbox: the first launch\'s file is not there');
  });

  test('a spare never serves a launch with another policy, nor one whose environment lacks its own', T, async () => {
    const base = policy({ env: { LANG: 'C.UTF-8' } });
    spares.refill(base);
    assert.equal(await spares.start(policy({ env: { LANG: 'C.UTF-8' }, memoryBytes: 256 * 1024 ** 2 })), undefined, 'other limits');
    assert.equal(spares.size, 1, 'the spare is kept for its own policy');
    assert.equal(await spares.start(policy({ env: {} })), undefined, 'without LANG, the spare (made with it) would hand it over');
    assert.equal(spares.size, 0, 'an unfit spare is dropped');
    spares.refill(base);
    const handle = (await spares.start({ ...base, env: { ...base.env, LC_TIME: 'C.UTF-8' }, command: ['sh', '-c', 'echo "$LANG $LC_TIME"'] }))?.handle;
    assert.ok(handle !== undefined, 'a launch may add to the spare\'s environment');
    assert.equal((await output(handle)).stdout, 'C.UTF-8 C.UTF-8\n');
  });

  test('a terminal spare serves only a launch with a terminal, which it gets at the person\'s size as its controlling terminal', T, async () => {
    const base = policy({ env: { LANG: 'C.UTF-8' } });
    spares.refill(base, true);
    assert.equal(await spares.start(base), undefined, 'a launch with pipes does not take a terminal spare');
    spares.refill(base, true);
    const launch = { ...base, env: { ...base.env, TERM: 'xterm-256color' }, command: ['sh', '-c', 'stty size; echo "$TERM"; test -t 0 && echo tty-in; : < /dev/tty && echo controlling'] };
    const started = await spares.start(launch, { cols: 101, rows: 33 });
    assert.ok(started?.pty !== undefined, 'the spare served it, with its terminal');
    let screen = '';
    started.pty.master.on('data', (chunk: Buffer) => { screen += chunk.toString(); });
    const exit = await started.handle.exited;
    await delay(100);
    started.pty.master.destroy();
    assert.equal(exit.code, 0, screen);
    assert.equal(screen, '33 101\r\nxterm-256color\r\ntty-in\r\ncontrolling\r\n');
  });

  test('a spare that cannot be set up serves nothing and leaves nothing: the launch makes its own and says why', T, async () => {
    // A share whose source is not there: bwrap fails before the shim runs, made ahead or not.
    const broken: SandboxPolicy = { ...policy(), shares: [{ source: `/nonexistent-${TAG}`, target: '/srv/missing', readOnly: true }] };
    spares.refill(broken);
    assert.equal(spares.size, 1);
    assert.equal(await spares.start({ ...broken, command: ['true'] }), undefined, 'no spare to run in');
    assert.equal(spares.size, 0);
    await noneOfOurs();
    // The usual path reports the set-up failure, as before.
    const fresh = await startSandbox({ ...broken, command: ['true'] }, { engine, ...PIPES });
    const exit = await fresh.exited;
    assert.deepEqual([exit.code, exit.reason], [125, 'setup-failed']);
    assert.match(exit.message ?? '', /could not be set up/);
  });

  test('at most `max` wait; closing removes them all', T, async () => {
    for (const memory of [128, 256, 384]) spares.refill(policy({ memoryBytes: memory * 1024 ** 2 }));
    assert.equal(spares.size, 2);
    assert.equal(await spares.start(policy({ memoryBytes: 128 * 1024 ** 2 })), undefined, 'the oldest went first');
    await delay(500);
    assert.ok(ourProcesses().length >= 2, 'positive control');
    await spares.close();
    assert.equal(spares.size, 0);
    await noneOfOurs();
    spares.refill(policy());
    assert.equal(spares.size, 0, 'none is made once closed');
  });
});

describe('a sandbox that fails to start', { skip: SKIP }, () => {
  const fdCount = (): number => readdirSync('/proc/self/fd').length;
  const settle = (): Promise<void> => delay(50);

  test('closes the host /etc files it opened for bwrap: bwrap missing, cgroup refused', T, async () => {
    // Positive control: on this host some /etc files are copied, so descriptors are opened.
    const probe = openHostEtcFiles(hostEtcEntries('none'));
    assert.ok(probe.names.length > 0, 'no host /etc file is copied here: the test would prove nothing');
    probe.close();
    await settle();
    const before = fdCount();

    // bwrap cannot be run: the launcher exits 127, the launch fails as a setup failure.
    const missing = await startSandbox(policy(), { engine: { ...engine, bwrap: '/nonexistent/bwrap' }, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
    const exit = await missing.exited;
    assert.equal(exit.reason, 'setup-failed', JSON.stringify(exit));

    // The cgroup cannot be made: the start is refused before any spawn.
    const cgroups = engine.cgroups;
    assert.ok(cgroups !== undefined, 'this test needs the engine\'s cgroups');
    const refusing = Object.assign(Object.create(cgroups) as typeof cgroups, {
      create: (): Promise<never> => Promise.reject(new Error('cgroup refused (test)')),
    });
    await assert.rejects(startSandbox(policy(), { engine: { ...engine, cgroups: refusing }, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }), /cgroup refused/);

    await settle();
    assert.equal(fdCount(), before, 'descriptors left open by the failed starts');
  });
});
