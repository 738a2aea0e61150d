// An impostor in the pool: a DNS-SD announcement that claims another host's identity (its key
// fingerprint in TXT `id`) but points at an SSH server holding a different key. The daemon must
// never launch anything there: a claim contested by two live instances marks both as impostors,
// and a connection that meets the wrong key marks the endpoint as one (src/peer/directory.ts,
// `connect` in src/daemon/daemon.ts). The real host stays reachable by HOST:PORT.
//
// Hosts: 1 alpha (the victim's user), 2 bravo (the real one), 3 mallory: an `ebp up
// --no-discovery` with a key of its own on port 20101, sharing the same app ids under the "open"
// approval policy (so that any launch that reached it would run and print "mallory"), plus a tiny
// announcer (src/discovery's Discovery from dist) claiming bravo's fingerprint for port 20101.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { PROTOCOL_VERSION } from '../../src/discovery/index.js';
import { STATUS } from '../../src/lib/errors.js';
import type { PeerView } from '../../src/peer/directory.js';
import { configToml, createTestLan, DAEMON_PORT, DEFAULT_APPS, ensureSetup, testLanSkipReason, waitUntil, type HostProcess, type TestDaemon, type TestHost, type TestLan } from '../harness/testnet.js';

const skip = testLanSkipReason();
const ENV = { EBP_DISCOVERY_TTL: '4' };
/** Exit status of a refused impostor (HOST_KEY_CHANGED). */
const REFUSED = STATUS.HOST_KEY_CHANGED.exit;

function whereConfig(tag: string, policy?: 'open'): string {
  return configToml({ apps: [...DEFAULT_APPS, { id: 'where', name: 'Where', exec: `echo ${tag}`, terminal: true }], ...(policy === undefined ? {} : { policy }) });
}

describe('an impostor claiming another host\'s identity', { skip, timeout: 180_000 }, () => {
  let lan: TestLan;
  let alpha: TestHost;
  let bravo: TestHost;
  let mallory: TestHost;
  let bravoId = '';
  let prefix = '';
  let fake: (HostProcess & { ready: Promise<string> }) | undefined;
  let fakeName = '';

  const daemonOf = (host: TestHost): TestDaemon => {
    const daemon = host.daemon;
    if (daemon === undefined) throw new Error(`${host.ns} has no daemon`);
    return daemon;
  };
  const peersUntil = async (what: string, predicate: (peers: PeerView[]) => boolean, timeoutMs = 10_000): Promise<PeerView[]> => {
    let last: PeerView[] = [];
    try {
      return await waitUntil(what, async () => {
        last = await lan.peers(alpha);
        return predicate(last) ? last : undefined;
      }, timeoutMs, 200);
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; alpha's list: ${JSON.stringify(last.map((peer) => ({ name: peer.name, id: peer.id, status: peer.status, addresses: peer.addresses })))}`);
    }
  };
  const startFake = async (): Promise<void> => {
    // The same wanted name as the real one: mDNS conflict resolution renames it "bravo (2)".
    fake = lan.announce(mallory, {
      name: 'bravo',
      port: DAEMON_PORT,
      ttlSeconds: 4,
      txt: { v: PROTOCOL_VERSION, id: bravoId, apps: DEFAULT_APPS.length + 1, cat: '00112233aabbccdd', load: '0/32' },
    });
    fakeName = await fake.ready;
  };
  /** Nothing ever reached mallory's SSH server as an authenticated peer, and nothing ran there. */
  const malloryUntouched = (): void => {
    const touched = daemonOf(mallory).events.filter((entry) => ['peer-connected', 'session-started', 'launch-refused'].includes(entry.event));
    assert.deepEqual(touched, [], 'a connection from alpha got through to the impostor\'s SSH server');
  };

  before(async () => {
    ensureSetup();
    lan = await createTestLan({ hosts: 3 });
    [alpha, bravo, mallory] = lan.hosts as [TestHost, TestHost, TestHost];
    await lan.trustEachOther([alpha, bravo]);
    await Promise.all([
      lan.startDaemon(alpha, { name: 'alpha', env: ENV, config: whereConfig('alpha') }),
      lan.startDaemon(bravo, { name: 'bravo', env: ENV, config: whereConfig('bravo') }),
      lan.startDaemon(mallory, { name: 'mallory', env: ENV, config: whereConfig('mallory', 'open'), args: ['--no-discovery'] }),
    ]);
    bravoId = daemonOf(bravo).fingerprint;
    prefix = bravoId.slice('SHA256:'.length, 'SHA256:'.length + 8);
    assert.notEqual(daemonOf(mallory).fingerprint, bravoId);
  });

  after(async () => {
    await lan.destroy();
  });

  test('before the impostor: bravo is verified and runs apps by name, prefix and address', async () => {
    await peersUntil('bravo announced', (list) => list.some((peer) => peer.id === bravoId && (peer.status === 'announced' || peer.status === 'verified')));
    for (const peer of ['bravo', prefix, bravo.endpoint]) {
      const run = await lan.ebp(alpha, ['run', peer, 'where']);
      assert.deepEqual([run.code, run.stdout], [0, 'bravo\n'], `${peer}: ${run.stderr}`);
    }
  });

  test('two live instances claiming one id: the one not proven by its key is the impostor; the id still reaches the real one', async (t) => {
    await startFake();
    t.diagnostic(`the fake announces itself as "${fakeName}"`);
    assert.notEqual(fakeName, 'bravo', 'mDNS conflict resolution renames the second "bravo"');
    // bravo's key was proven at its address by the launches of the first test.
    const peers = await peersUntil('the fake flagged', (list) => list.some((peer) => peer.id === bravoId && peer.name === fakeName && peer.status === 'impostor'));
    const claimants = peers.filter((peer) => peer.id === bravoId);
    assert.deepEqual(claimants.map((peer) => peer.name).sort(), ['bravo', fakeName].sort());
    assert.equal(claimants.find((peer) => peer.name === 'bravo')?.status, 'verified');
    assert.ok(claimants.some((peer) => peer.addresses.includes(mallory.address)));

    for (const peer of [prefix, `SHA256:${prefix}`, bravoId]) {
      const run = await lan.ebp(alpha, ['run', peer, 'where']);
      assert.deepEqual([run.code, run.stdout], [0, 'bravo\n'], `${peer}: ${run.stderr}`);
    }
    const byName = await lan.ebp(alpha, ['run', fakeName, 'where']);
    assert.equal(byName.code, REFUSED, `${fakeName}: ${byName.stdout}${byName.stderr}`);
    assert.equal(byName.stdout, '');
    assert.match(byName.stderr, /is marked as an impostor: its key does not match the identity it announced/);
    const table = await lan.ebp(alpha, ['peers']);
    assert.match(table.stdout, new RegExp(`${fakeName.replace(/[()]/g, '\\$&')} {2}${bravoId.replace(/[+/]/g, '\\$&')} .* impostor, trusted`));
    malloryUntouched();
  });

  test('while contested, `ebp run --any` and `ebp apps --all` never use the impostor', async () => {
    const any = await lan.ebp(alpha, ['run', '--any', 'where']);
    assert.doesNotMatch(any.stdout, /mallory/);
    assert.deepEqual([any.code, any.stdout], [0, 'bravo\n'], `the proven bravo is the one used: ${any.stderr}`);
    const pool = await lan.ebpJson<{ id: string; peers: string[] }[]>(alpha, ['apps', '--all']);
    for (const app of pool) assert.ok(!app.peers.includes(fakeName), `${app.id}: ${app.peers.join(', ')}`);
    assert.ok(pool.some((app) => app.peers.includes('bravo')), 'the real bravo is in the pool');
    malloryUntouched();
  });

  // A contested id is settled by the host key at an address: announcing someone's id does not
  // take the real peer out of use.
  test('while contested, the real bravo still works by HOST:PORT (its key is checked there)', async () => {
    const run = await lan.ebp(alpha, ['run', bravo.endpoint, 'where']);
    assert.equal(run.stdout.includes('mallory'), false);
    assert.deepEqual([run.code, run.stdout], [0, 'bravo\n'], `refused: ${run.stderr.trim()}`);
  });

  test('alone, the fake is dialled once, meets the wrong key, and is an impostor from then on', async (t) => {
    const since = Date.now();
    const stopped = await daemonOf(bravo).stop();
    assert.equal(stopped.code, 0);
    await daemonOf(alpha).event('peer-removed', (entry) => entry['name'] === 'bravo', 5000, since);
    const before = await peersUntil('only the fake claims bravo\'s id', (list) => list.filter((peer) => peer.id === bravoId).length === 1);
    const alone = before.find((peer) => peer.id === bravoId);
    t.diagnostic(`uncontested, before any connection, alpha lists the fake as "${alone?.status ?? '?'}"`);

    const first = await lan.ebp(alpha, ['run', prefix, 'where']);
    assert.equal(first.stdout, '');
    assert.equal(first.code, REFUSED, first.stderr);
    // Either it is dialled and meets the wrong key, or (bravo's key having been proven at bravo's
    // address before) it is refused without being dialled at all.
    const mismatch = new RegExp(`answered with key ${daemonOf(mallory).fingerprint.replace(/[+/]/g, '\\$&')}, but the peer announced ${bravoId.replace(/[+/]/g, '\\$&')}: not the machine it claims to be`);
    assert.ok(mismatch.test(first.stderr) || /is marked as an impostor/.test(first.stderr), first.stderr);
    if (mismatch.test(first.stderr)) await daemonOf(alpha).event('peer-impostor', () => true, 2000, since);

    const after = await lan.peers(alpha);
    assert.equal(after.find((peer) => peer.id === bravoId)?.status, 'impostor');
    const again = await lan.ebp(alpha, ['run', fakeName, 'where']);
    assert.equal(again.code, REFUSED);
    assert.match(again.stderr, /is marked as an impostor/);
    const any = await lan.ebp(alpha, ['run', '--any', 'where']);
    assert.doesNotMatch(any.stdout, /mallory/);
    malloryUntouched();
  });

  test('when the real bravo is back and the fake is gone, bravo is verified and usable again', async () => {
    await lan.startDaemon(bravo, { name: 'bravo', env: ENV, config: whereConfig('bravo') });
    await fake?.stop();
    await peersUntil('bravo verified again', (list) => list.some((peer) => peer.id === bravoId && peer.name === 'bravo' && peer.status === 'verified') && list.filter((peer) => peer.id === bravoId).length === 1);
    for (const peer of ['bravo', prefix, bravo.endpoint]) {
      const run = await lan.ebp(alpha, ['run', peer, 'where']);
      assert.deepEqual([run.code, run.stdout], [0, 'bravo\n'], `${peer}: ${run.stderr}`);
    }
    malloryUntouched();
  });
});
