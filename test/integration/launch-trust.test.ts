// Who may launch: trusted keys run at once, others wait for the owner (allow, allow always, deny,
// no answer), the trusted-only policy refuses them, a key that asks too often is refused, and a
// peer whose host key changed is refused with both fingerprints. Real daemons on 127.0.0.1; the
// clients are the real CLI, most of them without a daemon of their own.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import {
  clientDir, ebpIn, ebpOk, fingerprintOf, hostConfig, pendingRequests, poolCleanup, publicKeyOf, shown, startDaemon, startIn,
  trustClient, waitForRequest, waitUntil, type PoolDaemon,
} from './helpers/pool.js';

const SKIP = IS_ROOT ? false : 'needs root (sandboxes run as the ebp-sandbox user)';
const RATE_LIMIT = 3;

let hostA: PoolDaemon;
let strictHost: PoolDaemon;
let relayB: PoolDaemon;

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  [hostA, strictHost, relayB] = await Promise.all([
    startDaemon({ label: 'A', config: hostConfig({ name: 'alpha', policy: 'ask', timeout: '2s', rateLimit: RATE_LIMIT }) }),
    startDaemon({ label: 'T', config: hostConfig({ name: 'strict', policy: 'trusted-only' }) }),
    startDaemon({ label: 'B', config: hostConfig({ name: 'beta', policy: 'ask', apps: [] }) }),
  ]);
});
after(poolCleanup);

describe('trust by key', { skip: SKIP }, () => {
  test('a trusted key runs at once; after untrust the owner is asked again', { timeout: 60_000 }, async () => {
    const client = clientDir('trusted');
    const publicKey = await publicKeyOf(client);
    const trusted = await ebpOk(hostA.stateDir, ['trust', '--key', publicKey, '--name', 'laptop']);
    const fingerprint = await fingerprintOf(client);
    assert.match(trusted.stdout, new RegExp(fingerprint.replace(/[+/]/g, '\\$&')));

    const run = await ebpIn(client, ['run', hostA.endpoint, 'echo', 'hi']);
    assert.equal(run.stdout, 'hi\n', shown(run));
    assert.equal(run.code, 0, shown(run));
    assert.doesNotMatch(run.stderr, /waiting for the owner/, 'a trusted key is never held for approval');
    assert.deepEqual(await pendingRequests(hostA), []);

    const listed = JSON.parse((await ebpOk(hostA.stateDir, ['trusted', '--json'])).stdout) as { fingerprint: string; name: string }[];
    assert.ok(listed.some((key) => key.fingerprint === fingerprint && key.name === 'laptop'), JSON.stringify(listed));

    await ebpOk(hostA.stateDir, ['untrust', fingerprint]);
    const listedAfter = JSON.parse((await ebpOk(hostA.stateDir, ['trusted', '--json'])).stdout) as { fingerprint: string }[];
    assert.ok(!listedAfter.some((key) => key.fingerprint === fingerprint));

    const again = startIn(client, ['run', hostA.endpoint, 'echo', 'hi']);
    const request = await waitForRequest(hostA, fingerprint);
    assert.equal(request.app, 'echo');
    await ebpOk(hostA.stateDir, ['deny', request.id]);
    const result = await again.done;
    assert.equal(result.code, 1, shown(result));
    assert.equal(result.stdout, '');
  });

  test('a key trusted from a .pub file works the same', { timeout: 30_000 }, async () => {
    const client = clientDir('pubfile');
    const file = join(client, 'identity', 'id_ed25519.pub');
    await publicKeyOf(client);
    assert.ok(existsSync(file), 'ebp id made the key files');
    await ebpOk(hostA.stateDir, ['trust', '--key', file]);
    const run = await ebpIn(client, ['run', hostA.endpoint, 'echo', 'from', 'file']);
    assert.equal(run.stdout, 'from file\n', shown(run));
    assert.equal(run.code, 0, shown(run));
  });
});

describe('approval under policy "ask"', { skip: SKIP }, () => {
  test('allow: the waiting launch runs; the requester saw that it waited', { timeout: 60_000 }, async () => {
    const client = clientDir('allow');
    const fingerprint = await fingerprintOf(client);
    const launch = startIn(client, ['run', hostA.endpoint, 'echo', 'allowed', 'run']);
    const request = await waitForRequest(hostA, fingerprint);
    assert.equal(request.app, 'echo');
    assert.equal(request.appName, 'Echo');
    assert.match(request.id, /^[0-9a-f]+$/);
    assert.ok(Math.abs(Date.parse(request.time) - Date.now()) < 60_000, `request time ${request.time}`);
    const human = await ebpOk(hostA.stateDir, ['requests']);
    assert.ok(human.stdout.includes(request.id) && human.stdout.includes(fingerprint), human.stdout);

    await ebpOk(hostA.stateDir, ['allow', request.id]);
    const result = await launch.done;
    assert.equal(result.stdout, 'allowed run\n', shown(result));
    assert.equal(result.code, 0, shown(result));
    assert.match(result.stderr, new RegExp(`waiting for the owner.*${request.id}`));
    assert.deepEqual((await pendingRequests(hostA)).filter((r) => r.peerId === fingerprint), []);
    // Allowed once: the key is not trusted.
    const listed = JSON.parse((await ebpOk(hostA.stateDir, ['trusted', '--json'])).stdout) as { fingerprint: string }[];
    assert.ok(!listed.some((key) => key.fingerprint === fingerprint));
  });

  test('deny: the client exits 1 and says it was denied', { timeout: 60_000 }, async () => {
    const client = clientDir('deny');
    const fingerprint = await fingerprintOf(client);
    const launch = startIn(client, ['run', hostA.endpoint, 'echo', 'never']);
    const request = await waitForRequest(hostA, fingerprint);
    await ebpOk(hostA.stateDir, ['deny', request.id]);
    const result = await launch.done;
    assert.match(result.stderr, /denied/, shown(result));
    assert.equal(result.stdout, '');
    assert.equal(result.code, 1, shown(result));
  });

  test('no answer: after the configured 2 s the client exits 1, "did not answer in time"', { timeout: 60_000 }, async () => {
    const client = clientDir('timeout');
    const fingerprint = await fingerprintOf(client);
    const began = performance.now();
    const launch = startIn(client, ['run', hostA.endpoint, 'echo', 'never']);
    await waitForRequest(hostA, fingerprint);
    const result = await launch.done;
    const elapsed = performance.now() - began;
    assert.match(result.stderr, /did not answer in time|timed out/, shown(result));
    assert.equal(result.stdout, '');
    assert.equal(result.code, 1, shown(result));
    assert.ok(elapsed >= 1900 && elapsed < 15_000, `ended after ${Math.round(elapsed)} ms (timeout 2 s)`);
    assert.deepEqual((await pendingRequests(hostA)).filter((r) => r.peerId === fingerprint), [], 'the request is gone once it timed out');
  });

  test('allow --always: the key is trusted from then on and the next launch does not ask', { timeout: 60_000 }, async () => {
    const client = clientDir('always');
    const fingerprint = await fingerprintOf(client);
    const launch = startIn(client, ['run', hostA.endpoint, 'echo', 'first']);
    const request = await waitForRequest(hostA, fingerprint);
    const answer = await ebpOk(hostA.stateDir, ['allow', request.id, '--always']);
    assert.match(answer.stdout, /trusted from now on/);
    const first = await launch.done;
    assert.equal(first.stdout, 'first\n', shown(first));
    assert.equal(first.code, 0, shown(first));

    const listed = await ebpOk(hostA.stateDir, ['trusted']);
    assert.ok(listed.stdout.includes(fingerprint), `\`ebp trusted\` lists ${fingerprint}: ${listed.stdout}`);

    const second = await ebpIn(client, ['run', hostA.endpoint, 'echo', 'second']);
    assert.equal(second.stdout, 'second\n', shown(second));
    assert.equal(second.code, 0, shown(second));
    assert.doesNotMatch(second.stderr, /waiting for the owner/);
  });

  test('a requester that goes away while waiting withdraws its request', { timeout: 60_000 }, async () => {
    const client = clientDir('withdraw');
    const fingerprint = await fingerprintOf(client);
    const launch = startIn(client, ['run', hostA.endpoint, 'echo', 'never']);
    await waitForRequest(hostA, fingerprint);
    launch.child.kill('SIGKILL');
    await launch.done;
    await waitUntil(async () => (await pendingRequests(hostA)).every((r) => r.peerId !== fingerprint), 5000, 'the request to disappear');
  });

  test('approvals work the same for a launch relayed by the client\'s own daemon', { timeout: 60_000 }, async () => {
    const launch = startIn(relayB.stateDir, ['run', hostA.endpoint, 'echo', 'via', 'daemon']);
    const request = await waitForRequest(hostA, relayB.fingerprint);
    assert.equal(request.peerName, 'beta', 'the relaying daemon presents its configured name');
    await ebpOk(hostA.stateDir, ['allow', request.id]);
    const result = await launch.done;
    assert.equal(result.stdout, 'via daemon\n', shown(result));
    assert.equal(result.code, 0, shown(result));
  });

  test(`more than rate_limit (${RATE_LIMIT}) requests a minute from one key are refused`, { timeout: 60_000 }, async () => {
    const client = clientDir('rate');
    const fingerprint = await fingerprintOf(client);
    for (let i = 0; i < RATE_LIMIT; i += 1) {
      const launch = startIn(client, ['run', hostA.endpoint, 'echo', String(i)]);
      const request = await waitForRequest(hostA, fingerprint);
      await ebpOk(hostA.stateDir, ['deny', request.id]);
      const result = await launch.done;
      assert.equal(result.code, 1, shown(result));
    }
    const refused = await ebpIn(client, ['run', hostA.endpoint, 'echo', 'too', 'many']);
    assert.match(refused.stderr, /too many launch requests/, shown(refused));
    assert.equal(refused.stdout, '');
    assert.notEqual(refused.code, 0, shown(refused));
    assert.deepEqual((await pendingRequests(hostA)).filter((r) => r.peerId === fingerprint), [], 'a refused request never reaches the owner');
    // Other keys are not affected.
    const other = clientDir('rate-other');
    const otherId = await fingerprintOf(other);
    const launch = startIn(other, ['run', hostA.endpoint, 'echo', 'fine']);
    const request = await waitForRequest(hostA, otherId);
    await ebpOk(hostA.stateDir, ['allow', request.id]);
    assert.equal((await launch.done).code, 0);
  });
});

describe('policy "trusted-only"', { skip: SKIP }, () => {
  test('an untrusted key is refused with a message naming `ebp trust`; a trusted one runs', { timeout: 60_000 }, async () => {
    const client = clientDir('strict');
    const refused = await ebpIn(client, ['run', strictHost.endpoint, 'echo', 'no']);
    assert.match(refused.stderr, /ebp trust/, shown(refused));
    assert.equal(refused.stdout, '');
    assert.notEqual(refused.code, 0, shown(refused));
    assert.deepEqual(await pendingRequests(strictHost), [], 'nothing is put to the owner');

    await trustClient(strictHost, client);
    const run = await ebpIn(client, ['run', strictHost.endpoint, 'echo', 'yes']);
    assert.equal(run.stdout, 'yes\n', shown(run));
    assert.equal(run.code, 0, shown(run));
  });
});

describe('changed host key', { skip: SKIP }, () => {
  test('a peer that comes back with another key is refused (exit 255, both fingerprints shown)', { timeout: 90_000 }, async () => {
    let host = await startDaemon({ label: 'H', config: hostConfig({ name: 'changing', policy: 'trusted-only' }) });
    const direct = clientDir('known');
    await trustClient(host, direct);
    await trustClient(host, relayB.stateDir);
    const oldFingerprint = host.fingerprint;

    const first = await ebpIn(direct, ['run', host.endpoint, 'echo', 'first']);
    assert.equal(first.code, 0, shown(first));
    const relayed = await ebpIn(relayB.stateDir, ['run', host.endpoint, 'echo', 'first']);
    assert.equal(relayed.code, 0, shown(relayed));
    const known = JSON.parse(readFileSync(join(direct, 'known-peers.json'), 'utf8')) as { peers: { endpoint: string; fingerprint: string }[] };
    assert.deepEqual(known.peers.map((p) => [p.endpoint, p.fingerprint]), [[host.endpoint, oldFingerprint]], 'the first contact is remembered');

    // The host is reinstalled: same address and port, same trust list, a new identity.
    const { port, stateDir, endpoint } = host;
    await host.stop();
    rmSync(join(stateDir, 'identity'), { recursive: true, force: true });
    host = await startDaemon({ label: 'H', stateDir, port });
    assert.equal(host.port, port);
    const newFingerprint = host.fingerprint;
    assert.notEqual(newFingerprint, oldFingerprint);

    for (const [path, stateDirOfClient] of [['direct', direct], ['relayed', relayB.stateDir]] as const) {
      const refused = await ebpIn(stateDirOfClient, ['run', endpoint, 'echo', 'second']);
      assert.equal(refused.stdout, '', `${path}: nothing ran`);
      assert.ok(refused.stderr.includes(oldFingerprint), `${path}: the message names the remembered key\n${shown(refused)}`);
      assert.ok(refused.stderr.includes(newFingerprint), `${path}: the message names the presented key\n${shown(refused)}`);
      assert.match(refused.stderr, /CHANGED|changed/);
      assert.equal(refused.code, 255, `${path}: exit 255 (as ssh does for a changed host key)\n${shown(refused)}`);
    }
    const stillKnown = JSON.parse(readFileSync(join(direct, 'known-peers.json'), 'utf8')) as { peers: { fingerprint: string }[] };
    assert.deepEqual(stillKnown.peers.map((p) => p.fingerprint), [oldFingerprint], 'a refused key is not learned');
    await host.stop();
  });

  test('the command the refusal names as the fix exists and lets the client reconnect', { timeout: 90_000 }, async () => {
    let host = await startDaemon({ label: 'H2', config: hostConfig({ name: 'changing2', policy: 'trusted-only' }) });
    const direct = clientDir('forget');
    await trustClient(host, direct);
    assert.equal((await ebpIn(direct, ['run', host.endpoint, 'true'])).code, 0);
    const { port, stateDir, endpoint } = host;
    await host.stop();
    rmSync(join(stateDir, 'identity'), { recursive: true, force: true });
    host = await startDaemon({ label: 'H2', stateDir, port });
    const refused = await ebpIn(direct, ['run', endpoint, 'true']);
    const fix = /`(ebp [^`]+)`/.exec(refused.stderr.slice(refused.stderr.indexOf('fix:')));
    assert.ok(fix?.[1] !== undefined, `the refusal names a fix command\n${shown(refused)}`);
    const words = fix[1].split(' ').slice(1);
    const forgot = await ebpIn(direct, words);
    assert.equal(forgot.code, 0, `\`${fix[1]}\` works\n${shown(forgot)}`);
    await delay(50);
    const again = await ebpIn(direct, ['run', endpoint, 'echo', 'again']);
    assert.equal(again.stdout, 'again\n', shown(again));
    await host.stop();
  });
});
