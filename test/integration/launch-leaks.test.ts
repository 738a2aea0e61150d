// Leak test of the launch path: EBP_LEAK_COUNT (default 1000) sequential launches of a quick app
// on daemon A on each of two paths, from this process for speed and interleaved: on one SSH
// connection with a channel per launch, and relayed by daemon B through its control socket (as
// `ebp run` does when the local daemon runs); plus a handful through the real CLI on both paths. Before and after, on both sides: processes of the sandbox uid below the
// daemons, the sandboxes' cgroup folders, mounts, the daemons' file descriptors, temporary files,
// the sessions and pending requests. Each detector is first shown a live session (a positive
// control), so "nothing left" means nothing, not a detector looking at the wrong place.
//
// Other engineers may run sandboxes on this host at the same time: every check is attributed to
// our daemons (their process trees, the session ids A logged, a TMPDIR of their own).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { statePaths } from '../../src/config/paths.js';
import { launchOnPeer, type PeerLaunch } from '../../src/cli/peer-access.js';
import { loadOrCreateIdentity } from '../../src/peer/identity.js';
import { KnownHosts } from '../../src/peer/known-hosts.js';
import { connectPeer, parseEndpoint, type PeerConnection } from '../../src/transport/ssh-client.js';
import { IS_ROOT, sandboxHostUser, setupOnce } from './helpers/ebp.js';
import {
  ebpIn, ebpOk, fdCount, loggedSessionIds, marker, pendingRequests, poolCleanup, sandboxCgroupDirs, sandboxProcessesUnder, sandboxProcessesWith,
  sessionProcessesUnder, sessionsOf, shown, startIn, startLaunchPair, tempDir, waitingSpares, waitUntil, type PoolDaemon,
} from './helpers/pool.js';

const COUNT = leakCount();
const CLI_EACH = 5;
const FD_SLACK = 8;
const SKIP = IS_ROOT ? false : 'needs root (sandboxes run as the ebp-sandbox user)';

function leakCount(): number {
  const text = process.env['EBP_LEAK_COUNT'];
  if (text === undefined || text === '') return 1000;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`EBP_LEAK_COUNT must be a positive integer, not "${text}"`);
  return value;
}

interface Snapshot {
  readonly fdsA: number;
  readonly fdsB: number;
  readonly fdsSelf: number;
  readonly mounts: string[];
  readonly tmpA: string[];
  readonly tmpB: string[];
  readonly sandboxTmp: string[];
  readonly threadsA: number;
  readonly threadsB: number;
  readonly rssA: number;
  readonly rssB: number;
}

function rssOf(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+)/m.exec(text)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** The host's mount table as "mount point, type, source" lines. */
function mountKeys(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((line) => line !== '').map((line) => {
    const [left = '', right = ''] = line.split(' - ');
    const fields = left.split(' ');
    const tail = right.split(' ');
    return `${fields[4] ?? ''} ${tail[0] ?? ''} ${tail[1] ?? ''}`;
  });
}

/**
 * Mounts that cannot be ours: network namespaces pinned under /run/netns (`ip netns`, which other
 * tests on this host use; ebp never mounts there).
 */
function foreignMount(key: string): boolean {
  return /^\/run\/netns(\/\S*)? (nsfs|ext4|tmpfs) /.test(key);
}

/** `/tmp` entries owned by the sandbox uid (a sandbox that wrote to the host's /tmp). */
function sandboxUidTmpEntries(uid: number): string[] {
  return readdirSync('/tmp').filter((name) => {
    try {
      return statSync(join('/tmp', name)).uid === uid;
    } catch {
      return false;
    }
  }).sort();
}

describe(`launch leaks (${COUNT} launches on each path)`, { skip: SKIP, timeout: Math.max(300_000, COUNT * 400) }, () => {
  let hostA: PoolDaemon;
  let relayB: PoolDaemon;
  let direct: string;
  let tmpA: string;
  let tmpB: string;
  let sandboxUid: number;

  const snapshot = (): Snapshot => ({
    fdsA: fdCount(hostA.pid),
    fdsB: fdCount(relayB.pid),
    fdsSelf: fdCount(process.pid),
    mounts: mountKeys(),
    tmpA: readdirSync(tmpA).sort(),
    tmpB: readdirSync(tmpB).sort(),
    sandboxTmp: sandboxUidTmpEntries(sandboxUid),
    threadsA: readdirSync(`/proc/${hostA.pid}/task`).length,
    threadsB: readdirSync(`/proc/${relayB.pid}/task`).length,
    rssA: rssOf(hostA.pid),
    rssB: rssOf(relayB.pid),
  });

  before(async () => {
    await setupOnce();
    sandboxUid = sandboxHostUser().uid;
    tmpA = tempDir('tmpA');
    tmpB = tempDir('tmpB');
    ({ hostA, relayB, direct } = await startLaunchPair({ a: { TMPDIR: tmpA }, b: { TMPDIR: tmpB } }));
  });
  after(poolCleanup);

  test('the detectors see a live session (positive control)', { timeout: 60_000 }, async () => {
    const tag = `30.${marker()}`;
    const launch = startIn(direct, ['run', hostA.endpoint, 'sleep', tag], { input: '', killAfterMs: 60_000 });
    await waitUntil(() => sandboxProcessesWith(`sleep ${tag}`).length > 0, 15_000, 'the sleeper');
    assert.ok(sandboxProcessesUnder(hostA.pid).some((p) => p.argv.join(' ').includes(tag)), 'found below daemon A');
    const [session] = await sessionsOf(hostA);
    assert.ok(session !== undefined, 'listed in sessions');
    assert.ok(loggedSessionIds(hostA).includes(session.id), 'the session id is in A\'s log');
    assert.ok(sandboxCgroupDirs().some((dir) => dir.endsWith(`ebp-s-${session.id}`)), 'its cgroup folder is found');
    await ebpOk(hostA.stateDir, ['stop', session.id]);
    await launch.done;
  });

  test(`${COUNT} direct and ${COUNT} relayed launches leave nothing behind on either side`, { timeout: Math.max(280_000, COUNT * 380) }, async (t) => {
    const identity = await loadOrCreateIdentity(direct);
    const knownHosts = await KnownHosts.open(direct);
    const endpoint = parseEndpoint(hostA.endpoint, 20101);
    const bPaths = statePaths({ stateDir: relayB.stateDir });

    // What the launch said on stderr, kept for the failure message.
    const said = new Map<number, string>();
    const directLaunch = async (connection: PeerConnection, i: number): Promise<string> => {
      const remote = await connection.exec(`echo leak-${i}`);
      let out = '';
      let err = '';
      remote.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      remote.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      remote.stdin.end();
      const exit = await remote.exit;
      said.set(i, err);
      return `${exit.kind === 'code' ? String(exit.code) : exit.kind}:${out}`;
    };
    const relayedLaunch = async (i: number): Promise<string> => {
      const launch: PeerLaunch = await launchOnPeer(bPaths, { peer: hostA.endpoint, command: ['echo', `leak-${i}`], env: {} });
      let out = '';
      let err = '';
      launch.remote.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      launch.remote.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      launch.remote.stdin.end();
      // As `ebp run` does (cli/attach.ts): the exit may be known while output is still to be
      // read (frames that came with the daemon's answer), so the output's end is waited for.
      const ended = [launch.remote.stdout, launch.remote.stderr].map(async (stream) => new Promise((resolve) => { stream.once('end', resolve); }));
      const exit = await launch.remote.exit;
      await Promise.all(ended);
      launch.done();
      said.set(i, err);
      return `${exit.kind === 'code' ? String(exit.code) : JSON.stringify(exit)}:${out}`;
    };

    // Warm-up on every path: pooled connections, lazily made cgroup bases, libuv's signal pipe.
    let connection = await connectPeer(endpoint, { identity, knownHosts, username: 'leak-test' });
    for (let i = 0; i < 3; i += 1) {
      assert.equal(await directLaunch(connection, i), `0:leak-${i}\n`);
      assert.equal(await relayedLaunch(i), `0:leak-${i}\n`);
    }
    connection.close();
    await delay(500);
    // The warm-up's launches left a spare for the next one (sandbox/spares.ts): one, waiting.
    await waitUntil(() => waitingSpares(hostA.pid).length === 1 && sessionProcessesUnder(hostA.pid).length === 0, 5000, 'one spare waiting below A, nothing else');
    const idsBefore = new Set(loggedSessionIds(hostA));
    const cgroupsBefore = new Set(sandboxCgroupDirs());
    const before = snapshot();
    assert.deepEqual(sandboxProcessesUnder(relayB.pid), []);
    assert.equal(readlinkSync(`/proc/${hostA.pid}/ns/mnt`), readlinkSync('/proc/self/ns/mnt'), 'daemon A shares the host mount table this test reads');

    connection = await connectPeer(endpoint, { identity, knownHosts, username: 'leak-test' });
    const began = performance.now();
    const failures: string[] = [];
    const durations: number[] = [];
    for (let i = 0; i < 2 * COUNT; i += 1) {
      const start = performance.now();
      const result = i % 2 === 0 ? await directLaunch(connection, i) : await relayedLaunch(i);
      durations.push(performance.now() - start);
      if (result !== `0:leak-${i}\n`) failures.push(`#${i} (${i % 2 === 0 ? 'direct' : 'relayed'}): ${JSON.stringify(result)}, stderr ${JSON.stringify(said.get(i) ?? '')}`);
      if (failures.length > 20) break;
    }
    connection.close();
    const inProcessMs = performance.now() - began;
    assert.deepEqual(failures, [], `launches that did not print their line and exit 0 (of ${2 * COUNT})`);

    // A handful through the real CLI, on both paths.
    for (let i = 0; i < CLI_EACH; i += 1) {
      for (const client of [direct, relayB.stateDir]) {
        const result = await ebpIn(client, ['run', hostA.endpoint, 'echo', `cli-${i}`]);
        assert.equal(result.stdout, `cli-${i}\n`, shown(result));
        assert.equal(result.code, 0, shown(result));
      }
    }
    const sorted = [...durations].sort((a, b) => a - b);
    t.diagnostic(`${2 * COUNT} in-process launches in ${Math.round(inProcessMs)} ms; per launch median ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms, p99 ${Math.round(sorted[Math.floor(sorted.length * 0.99)] ?? 0)} ms, max ${Math.round(sorted[sorted.length - 1] ?? 0)} ms`);

    // Let the last teardown finish, then compare.
    await waitUntil(async () => (await sessionsOf(hostA)).length === 0, 5000, 'A\'s sessions to be empty');
    await waitUntil(() => sessionProcessesUnder(hostA.pid).length === 0, 5000, 'no sandbox process below A but the spare');
    let afterSnap = snapshot();
    const deadline = performance.now() + 5000;
    while ((afterSnap.fdsA > before.fdsA + FD_SLACK || afterSnap.fdsB > before.fdsB + FD_SLACK) && performance.now() < deadline) {
      await delay(100);
      afterSnap = snapshot();
    }
    const summary = (snap: Snapshot): string => JSON.stringify({ ...snap, mounts: snap.mounts.length, sandboxTmp: snap.sandboxTmp.length });
    t.diagnostic(`before: ${summary(before)}`);
    t.diagnostic(`after:  ${summary(afterSnap)}`);

    const launchedIds = loggedSessionIds(hostA).filter((id) => !idsBefore.has(id));
    assert.equal(launchedIds.length, 2 * COUNT + 2 * CLI_EACH, 'A logged one session per launch');
    const ours = new Set(launchedIds);
    const leftoverCgroups = sandboxCgroupDirs().filter((dir) => ours.has(dir.slice(dir.lastIndexOf('ebp-s-') + 'ebp-s-'.length)));
    assert.deepEqual(leftoverCgroups, [], 'cgroup folders of our sessions left behind');
    assert.deepEqual(sessionProcessesUnder(hostA.pid), [], 'sandbox processes left below A');
    // Every launch used a spare or made one: still one spare for the one app launched, not more.
    assert.equal(waitingSpares(hostA.pid).length, 1, 'spares waiting below A');
    const spareLog = [...hostA.log().matchAll(/session-started session=[0-9a-f]+ .*spare=true/g)].length;
    assert.ok(spareLog >= COUNT, `most launches ran in a spare (${spareLog} of ${2 * COUNT + 2 * CLI_EACH})`);
    // The cgroups of spares never used (made, then dropped) are gone too: one at most is new.
    const newIds = new Set(sandboxCgroupDirs().filter((dir) => !cgroupsBefore.has(dir) && !ours.has(dir.slice(dir.lastIndexOf('ebp-s-') + 6))).map((dir) => dir.slice(dir.lastIndexOf('ebp-s-') + 6)));
    assert.ok(newIds.size <= 1, `cgroup folders of sandboxes that served no session: ${[...newIds].join(', ')}`);
    assert.deepEqual(sandboxProcessesUnder(relayB.pid), [], 'sandbox-uid processes below B');
    assert.deepEqual(await sessionsOf(hostA), []);
    assert.deepEqual(await pendingRequests(hostA), []);
    assert.ok(afterSnap.fdsA <= before.fdsA + FD_SLACK, `daemon A's descriptors grew from ${before.fdsA} to ${afterSnap.fdsA}`);
    assert.ok(afterSnap.fdsB <= before.fdsB + FD_SLACK, `daemon B's descriptors grew from ${before.fdsB} to ${afterSnap.fdsB}`);
    assert.ok(afterSnap.fdsSelf <= before.fdsSelf + FD_SLACK, `this process's descriptors grew from ${before.fdsSelf} to ${afterSnap.fdsSelf}`);
    assert.ok(afterSnap.threadsA <= before.threadsA + 2, `daemon A's threads grew from ${before.threadsA} to ${afterSnap.threadsA}`);
    assert.ok(afterSnap.threadsB <= before.threadsB + 2, `daemon B's threads grew from ${before.threadsB} to ${afterSnap.threadsB}`);
    const newMounts = afterSnap.mounts.filter((key) => !before.mounts.includes(key) && !foreignMount(key));
    assert.deepEqual(newMounts, [], 'mounts that appeared on the host');
    assert.deepEqual(afterSnap.tmpA, before.tmpA, 'temporary files of daemon A');
    assert.deepEqual(afterSnap.tmpB, before.tmpB, 'temporary files of daemon B');
    const newSandboxTmp = afterSnap.sandboxTmp.filter((name) => !before.sandboxTmp.includes(name));
    assert.ok(newSandboxTmp.length <= 2, `new /tmp entries of the sandbox uid: ${newSandboxTmp.join(', ')}`);
  });
});
