// How a sandbox's namespaces end (sandbox/runner.ts holdNamespaces), with real bwrap: the runner
// keeps them open from outside while the sandbox runs, so that tearing them down is not part of
// the sandbox's exit, and lets them go once the sandbox has ended. Both for a sandbox made for its
// launch and for one made ahead (a spare); in the daemon, after a quiet moment.
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createEngine, type SandboxEngine } from '../../src/sandbox/engine.js';
import { buildPolicy } from '../../src/sandbox/request.js';
import { prepareSandbox, startSandbox, type SandboxHandle } from '../../src/sandbox/runner.js';
import { setupOnce } from './helpers/ebp.js';

const T = { timeout: 60_000 } as const;
const SKIP = process.getuid?.() === 0 ? false : 'needs root (sandboxes run as the ebp-sandbox user)';
const PIPES = { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' } as const;

let engine: SandboxEngine;

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  engine = await createEngine();
});

/**
 * The kinds checked here. The runner holds the user namespace too, but bwrap --disable-userns
 * runs the command in a user namespace nested in the one the runner holds.
 */
const KINDS = ['mnt', 'net', 'ipc'] as const;

/** The namespaces this process holds open, as their links read ("mnt:[4026532198]"). */
function heldNamespaces(): string[] {
  const held: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (KINDS.some((kind) => target.startsWith(`${kind}:[`))) held.push(target);
    } catch {
      // closed meanwhile (readdir's own descriptor)
    }
  }
  return held;
}

/** The running command's namespaces (KINDS), once the sandbox says where its command is. */
async function commandNamespaces(handle: SandboxHandle): Promise<string[]> {
  for (let tries = 0; tries < 200; tries += 1) {
    const pid = handle.commandPid();
    if (pid !== undefined) return KINDS.map((kind) => readlinkSync(`/proc/${pid}/ns/${kind}`));
    await delay(10);
  }
  throw new Error('the sandbox never reported its command');
}

/** None of NAMESPACES is held by this process any more (waits a second for the thread pool). */
async function released(namespaces: readonly string[]): Promise<void> {
  const stillHeld = (): string[] => namespaces.filter((namespace) => heldNamespaces().includes(namespace));
  for (let tries = 0; tries < 100 && stillHeld().length > 0; tries += 1) await delay(10);
  assert.deepEqual(stillHeld(), [], 'still held after the sandbox ended');
}

/** Ends the sandbox (its `cat` reads EOF) and waits until the runner no longer holds NAMESPACES. */
async function endAndRelease(handle: SandboxHandle, namespaces: readonly string[]): Promise<void> {
  handle.stdin?.end();
  const exit = await handle.exited;
  assert.equal(exit.code, 0, JSON.stringify(exit));
  // Closed on the thread pool right after the end was reported.
  await released(namespaces);
}

/** Runs CHECKS; a failed one still ends the sandbox, which would otherwise wait on its input. */
async function stoppedOnFailure(handle: SandboxHandle, checks: () => Promise<void>): Promise<void> {
  try {
    await checks();
  } catch (error) {
    await handle.stop(0);
    throw error;
  }
}

describe('a sandbox\'s namespaces', { skip: SKIP }, () => {
  test('are held by the runner while the sandbox runs, and let go once it has ended', T, async () => {
    const policy = buildPolicy({ command: ['cat'] }, engine.identity);
    const handle = await startSandbox(policy, { engine, ...PIPES });
    await stoppedOnFailure(handle, async () => {
      const namespaces = await commandNamespaces(handle);
      for (const [index, kind] of KINDS.entries()) {
        assert.notEqual(namespaces[index], readlinkSync(`/proc/self/ns/${kind}`), `the command runs in the host's ${kind} namespace`);
      }
      const held = heldNamespaces();
      assert.deepEqual(namespaces.filter((namespace) => !held.includes(namespace)), [], 'not held by the runner');
      await endAndRelease(handle, namespaces);
    });
  });

  test('of a sandbox made ahead: held from its making, let go after its one launch', T, async () => {
    // A sandbox made ahead takes its command at the launch; the policy's own is not run.
    const policy = buildPolicy({ command: ['true'] }, engine.identity);
    const prepared = await prepareSandbox(policy, { engine, ...PIPES });
    const before = heldNamespaces();
    assert.ok(before.length > 0, 'nothing is held while the sandbox waits for its command');
    const handle = prepared.start(['cat'], {});
    await stoppedOnFailure(handle, async () => {
      const namespaces = await commandNamespaces(handle);
      assert.deepEqual(namespaces.filter((namespace) => !before.includes(namespace)), [], 'not held since the sandbox was made');
      await endAndRelease(handle, namespaces);
    });
  });
});

describe('a sandbox\'s teardown after its end', { skip: SKIP }, () => {
  // The daemon's engine waits a quiet moment after the end is known (lib/quiet.ts); a long wait
  // here makes the order plain to see.
  const QUIET_MS = 400;

  test('with a wait: the end is told at once, the namespaces and the cgroup go only after the wait', T, async () => {
    const quiet: SandboxEngine = { ...engine, tearDownAfterMs: QUIET_MS };
    const policy = buildPolicy({ command: ['cat'] }, engine.identity);
    const handle = await startSandbox(policy, { engine: quiet, ...PIPES });
    let namespaces: string[] = [];
    await stoppedOnFailure(handle, async () => {
      namespaces = await commandNamespaces(handle);
    });
    let tornDown = false;
    void handle.exited.then(() => { tornDown = true; });
    const began = Date.now();
    handle.stdin?.end();
    const ended = await handle.ended;
    assert.equal(ended.code, 0, JSON.stringify(ended));
    assert.ok(Date.now() - began < QUIET_MS, `the end took ${Date.now() - began} ms to be told`);
    assert.equal(tornDown, false, 'torn down before the wait was over');
    const held = heldNamespaces();
    assert.deepEqual(namespaces.filter((namespace) => !held.includes(namespace)), [], 'let go before the wait was over');
    const exit = await handle.exited;
    assert.ok(Date.now() - began >= QUIET_MS, `torn down after ${Date.now() - began} ms`);
    assert.equal(exit.code, 0);
    assert.ok(exit.stats !== undefined || engine.cgroups === undefined, 'the record has no final counters');
    await released(namespaces);
  });

  test('without one (a command that waits for the teardown itself): done right after the end', T, async () => {
    assert.equal(engine.tearDownAfterMs, 0);
    const policy = buildPolicy({ command: ['true'] }, engine.identity);
    const handle = await startSandbox(policy, { engine, ...PIPES });
    const ended = await handle.ended;
    const began = Date.now();
    await handle.exited;
    assert.ok(Date.now() - began < QUIET_MS / 2, `torn down ${Date.now() - began} ms after the end was told`);
    assert.equal(ended.code, 0);
  });
});
