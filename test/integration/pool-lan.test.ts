// The pool on a LAN of network namespaces (test/harness/testnet.ts): real `ebp up` daemons that
// find each other with DNS-SD on their veths, and the CLI run in each host: who sees whom, how
// fast stopped, killed and renamed peers show, launches by name, fingerprint prefix and --any,
// clear errors for duplicate names and unknown peers, the pool's catalogue, static peers.
//
// Hosts (all with EBP_DISCOVERY_TTL=4, all trusting each other):
//   1 alpha, 2 bravo, 3 charlie   the pool
//   4 dup, 5 dup                  the same name twice: the second announces "dup (2)"
//   6 dup, --no-discovery         a static-only host (whose own name is "dup" too)
// Each shares echo, cat, sh, date and `where`, which prints the host's tag (h<index>).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import type { PeerView } from '../../src/peer/directory.js';
import { configToml, createTestLan, DEFAULT_APPS, ensureSetup, testLanSkipReason, waitUntil, type LogEvent, type TestDaemon, type TestHost, type TestLan } from '../harness/testnet.js';

const skip = testLanSkipReason();
const TTL_SECONDS = 4;
const ENV = { EBP_DISCOVERY_TTL: String(TTL_SECONDS) };
/** Bounds under test. */
const STOP_BOUND_MS = 3000;
const KILL_BOUND_MS = (TTL_SECONDS + 1) * 1000;

function configFor(host: TestHost): string {
  return configToml({ apps: [...DEFAULT_APPS, { id: 'where', name: 'Where', exec: `echo h${host.index}`, terminal: true }] });
}

describe('the pool on a LAN of network namespaces', { skip, timeout: 180_000 }, () => {
  let lan: TestLan;
  let alpha: TestHost;
  let bravo: TestHost;
  let charlie: TestHost;
  let dup1: TestHost;
  let dup2: TestHost;
  let lone: TestHost;
  const names = new Map<TestHost, string>();

  const start = async (host: TestHost, name: string, args: readonly string[] = []): Promise<TestDaemon> => {
    const daemon = await lan.startDaemon(host, { name, env: ENV, config: configFor(host), args });
    names.set(host, daemon.name);
    return daemon;
  };
  const daemonOf = (host: TestHost): TestDaemon => {
    const daemon = host.daemon;
    if (daemon === undefined) throw new Error(`${host.ns} has no daemon`);
    return daemon;
  };
  /** `ebp peers --json` on `host` until `predicate` holds on the list. */
  const peersUntil = async (host: TestHost, what: string, predicate: (peers: PeerView[]) => boolean, timeoutMs = 10_000): Promise<PeerView[]> => {
    let last: PeerView[] = [];
    try {
      return await waitUntil(`${what} (as seen from ${names.get(host) ?? host.ns})`, async () => {
        last = await lan.peers(host);
        return predicate(last) ? last : undefined;
      }, timeoutMs, 200);
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; the list: ${JSON.stringify(last.map((peer) => ({ name: peer.name, id: peer.id, status: peer.status, source: peer.source, addresses: peer.addresses })))}`);
    }
  };
  const removalAfter = (observer: TestHost, name: string, since: number, timeoutMs: number): Promise<LogEvent> =>
    daemonOf(observer).event('peer-removed', (entry) => entry['name'] === name, timeoutMs, since);

  before(async () => {
    ensureSetup();
    lan = await createTestLan({ hosts: 6 });
    [alpha, bravo, charlie, dup1, dup2, lone] = lan.hosts as [TestHost, TestHost, TestHost, TestHost, TestHost, TestHost];
    await lan.trustEachOther();
    await Promise.all([start(alpha, 'alpha'), start(bravo, 'bravo'), start(charlie, 'charlie'), start(dup1, 'dup'), start(lone, 'dup', ['--no-discovery'])]);
  });

  after(async () => {
    await lan.destroy();
  });

  test('every host sees every other one, verified and trusted, in `ebp peers --json`', async () => {
    const pool = [alpha, bravo, charlie, dup1];
    for (const host of pool) {
      const others = pool.filter((other) => other !== host);
      const peers = await peersUntil(host, 'all the others', (list) => others.every((other) => list.some((peer) => peer.id === daemonOf(other).fingerprint)));
      for (const other of others) {
        const view = peers.find((peer) => peer.id === daemonOf(other).fingerprint);
        assert.ok(view !== undefined);
        assert.equal(view.name, names.get(other));
        // Announced ids are proven by the first connection; before it they are 'announced'.
        assert.ok(['announced', 'verified'].includes(view.status), `${view.name}: ${view.status}`);
        assert.equal(view.trusted, true);
        assert.equal(view.source, 'mdns');
        assert.equal(view.port, 20101);
        assert.ok(view.addresses.includes(other.address), `${view.name}: ${view.addresses.join(',')} lacks ${other.address}`);
        assert.ok(view.addresses.some((address) => address.startsWith('fe80::')), `${view.name}: no IPv6 link-local address in ${view.addresses.join(',')}`);
        assert.equal(view.apps, DEFAULT_APPS.length + 1);
      }
      assert.ok(!peers.some((peer) => peer.id === daemonOf(host).fingerprint), 'a host does not list itself');
      assert.ok(!peers.some((peer) => peer.id === daemonOf(lone).fingerprint), 'the --no-discovery host is not announced');
    }
    const table = await lan.ebp(alpha, ['peers']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^this machine: alpha {2}SHA256:/);
    assert.match(table.stdout, /\nbravo {2}SHA256:\S+ {2}\S+ port 20101 {2}(announced|verified), trusted {2}5 apps {2}load 0\/32 {2}\[mdns\]/);
  });

  test(`a stopped peer (SIGTERM) is gone from the others within ${STOP_BOUND_MS / 1000} s`, async (t) => {
    const since = Date.now();
    const stopping = daemonOf(charlie).stop();
    const [seenByAlpha, seenByBravo] = await Promise.all([removalAfter(alpha, 'charlie', since, STOP_BOUND_MS + 2000), removalAfter(bravo, 'charlie', since, STOP_BOUND_MS + 2000)]);
    const stopped = await stopping;
    assert.equal(stopped.code, 0, daemonOf(charlie).stderr());
    const delays = [seenByAlpha.at - since, seenByBravo.at - since];
    t.diagnostic(`gone after ${delays.join(' and ')} ms (bound ${STOP_BOUND_MS} ms); the daemon took ${stopped.ms} ms to exit`);
    for (const delay of delays) assert.ok(delay <= STOP_BOUND_MS, `${delay} ms > ${STOP_BOUND_MS} ms`);
    const peers = await lan.peers(alpha);
    assert.ok(!peers.some((peer) => peer.name === 'charlie'), JSON.stringify(peers.map((peer) => peer.name)));

    // It comes back under its name when restarted.
    await start(charlie, 'charlie');
    for (const host of [alpha, bravo]) await peersUntil(host, 'charlie back', (list) => list.some((peer) => peer.name === 'charlie' && (peer.status === 'verified' || peer.status === 'announced')));
  });

  test(`a killed peer (SIGKILL, no goodbyes) is gone within its TTL + 1 s = ${KILL_BOUND_MS / 1000} s`, async (t) => {
    const since = Date.now();
    await daemonOf(charlie).kill();
    const [seenByAlpha, seenByBravo] = await Promise.all([removalAfter(alpha, 'charlie', since, KILL_BOUND_MS + 5000), removalAfter(bravo, 'charlie', since, KILL_BOUND_MS + 5000)]);
    const delays = [seenByAlpha.at - since, seenByBravo.at - since];
    t.diagnostic(`gone after ${delays.join(' and ')} ms (TTL ${TTL_SECONDS} s, bound ${KILL_BOUND_MS} ms)`);
    for (const delay of delays) assert.ok(delay <= KILL_BOUND_MS, `${delay} ms > ${KILL_BOUND_MS} ms`);
    assert.ok(!(await lan.peers(bravo)).some((peer) => peer.name === 'charlie'));

    await start(charlie, 'charlie');
    for (const host of [alpha, bravo]) await peersUntil(host, 'charlie back', (list) => list.some((peer) => peer.name === 'charlie'));
  });

  let renamesBegan = 0;
  test('a renamed peer (`ebp name NEW`) shows under its new name in the others\' lists', async (t) => {
    renamesBegan = Date.now();
    const id = daemonOf(bravo).fingerprint;
    try {
      const renamed = await lan.ebp(bravo, ['name', 'bravo renamed']);
      assert.equal(renamed.code, 0, renamed.stderr);
      assert.match(renamed.stdout, /now announced as bravo renamed/);
      for (const host of [alpha, charlie]) {
        await peersUntil(host, 'bravo under its new name only', (list) => list.some((peer) => peer.id === id && peer.name === 'bravo renamed') && !list.some((peer) => peer.name === 'bravo'));
      }
      t.diagnostic(`seen under the new name after ${Date.now() - renamesBegan} ms (both observers)`);
      const shown = await lan.ebp(bravo, ['name']);
      assert.equal(shown.stdout, 'bravo renamed\n');
      assert.equal((await lan.ebp(alpha, ['run', 'bravo renamed', 'where'])).stdout, 'h2\n');
      const bad = await lan.ebp(bravo, ['name', ' padded ']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /invalid name/);
    } finally {
      const back = await lan.ebp(bravo, ['name', 'bravo']);
      assert.equal(back.code, 0, back.stderr);
      await peersUntil(alpha, 'bravo under its old name again', (list) => list.some((peer) => peer.id === id && peer.name === 'bravo') && !list.some((peer) => peer.name === 'bravo renamed'));
      await peersUntil(charlie, 'bravo under its old name again', (list) => list.some((peer) => peer.id === id && peer.name === 'bravo') && !list.some((peer) => peer.name === 'bravo renamed'));
    }
  });

  test('a renamed host never lists itself (its former name) as a peer', () => {
    const id = daemonOf(bravo).fingerprint;
    const selfListed = daemonOf(bravo).events.filter((entry) => entry.at >= renamesBegan && entry.event === 'peer-added' && entry['id'] === id);
    assert.deepEqual(selfListed.map((entry) => entry['name']), [], 'after `ebp name`, bravo listed its own former name as a peer (until the goodbye expired)');
  });

  test('`ebp run NAME` and `ebp run FINGERPRINT-PREFIX` launch on that peer from another host', async () => {
    const byName = await lan.ebp(alpha, ['run', 'bravo', 'echo', 'hi']);
    assert.deepEqual([byName.code, byName.stdout], [0, 'hi\n'], byName.stderr);
    const byNameOtherCase = await lan.ebp(charlie, ['run', 'BRAVO', 'where']);
    assert.deepEqual([byNameOtherCase.code, byNameOtherCase.stdout], [0, 'h2\n'], byNameOtherCase.stderr);
    const fingerprint = daemonOf(bravo).fingerprint;
    const prefix = fingerprint.slice('SHA256:'.length, 'SHA256:'.length + 8);
    const byPrefix = await lan.ebp(alpha, ['run', prefix, 'where']);
    assert.deepEqual([byPrefix.code, byPrefix.stdout], [0, 'h2\n'], byPrefix.stderr);
    const byFullPrefix = await lan.ebp(charlie, ['run', `SHA256:${prefix}`, 'echo', 'hi', 'there']);
    assert.deepEqual([byFullPrefix.code, byFullPrefix.stdout], [0, 'hi there\n'], byFullPrefix.stderr);
    const byAddress = await lan.ebp(charlie, ['run', bravo.endpoint, 'where']);
    assert.deepEqual([byAddress.code, byAddress.stdout], [0, 'h2\n'], byAddress.stderr);
    const piped = await lan.ebp(alpha, ['run', 'charlie', 'cat'], { input: 'through the pool\n' });
    assert.deepEqual([piped.code, piped.stdout], [0, 'through the pool\n'], piped.stderr);
  });

  test('two hosts with one name: the second announces "dup (2)"; each is reached by its own name', async () => {
    const second = await start(dup2, 'dup');
    assert.equal(second.name, 'dup (2)');
    assert.equal(daemonOf(dup1).name, 'dup');
    const peers = await peersUntil(alpha, 'both dups', (list) => list.some((peer) => peer.name === 'dup') && list.some((peer) => peer.name === 'dup (2)'));
    assert.equal(peers.find((peer) => peer.name === 'dup')?.id, daemonOf(dup1).fingerprint);
    assert.equal(peers.find((peer) => peer.name === 'dup (2)')?.id, second.fingerprint);
    assert.equal((await lan.ebp(alpha, ['run', 'dup', 'where'])).stdout, 'h4\n');
    assert.equal((await lan.ebp(alpha, ['run', 'dup (2)', 'where'])).stdout, 'h5\n');
  });

  test('a name two peers answer to is an error listing both; a prefix or name that matches nothing is a clear error', async () => {
    // The static-only host is called "dup" too: added by address, it answers to that name.
    const added = await lan.ebp(alpha, ['peers', 'add', lone.endpoint]);
    assert.equal(added.code, 0, added.stderr);
    try {
      await peersUntil(alpha, 'the static dup', (list) => list.some((peer) => peer.source === 'static' && peer.name === 'dup' && peer.status === 'pinned'));
      const ambiguous = await lan.ebp(alpha, ['run', 'dup', 'where']);
      assert.equal(ambiguous.code, 2, ambiguous.stderr);
      assert.equal(ambiguous.stdout, '');
      assert.match(ambiguous.stderr, /"dup" matches several peers/);
      assert.ok(ambiguous.stderr.includes(daemonOf(dup1).fingerprint), ambiguous.stderr);
      assert.ok(ambiguous.stderr.includes(daemonOf(lone).fingerprint), ambiguous.stderr);
      assert.match(ambiguous.stderr, /fix: use a longer fingerprint prefix or HOST:PORT/);
      const byPrefix = await lan.ebp(alpha, ['run', daemonOf(lone).fingerprint.slice(7, 15), 'where']);
      assert.deepEqual([byPrefix.code, byPrefix.stdout], [0, 'h6\n'], byPrefix.stderr);
    } finally {
      assert.equal((await lan.ebp(alpha, ['peers', 'remove', lone.endpoint])).code, 0);
    }

    const ids = lan.daemons().map((daemon) => daemon.fingerprint);
    let nothing = 'Zz9Zz9Zz';
    while (ids.some((id) => id.startsWith(`SHA256:${nothing}`))) nothing = nothing.replace(/^./, 'Q');
    const unknownPrefix = await lan.ebp(alpha, ['run', nothing, 'echo', 'hi']);
    assert.equal(unknownPrefix.code, 1, unknownPrefix.stderr);
    assert.equal(unknownPrefix.stdout, '');
    assert.match(unknownPrefix.stderr, new RegExp(`ebp: no peer called "${nothing}" in the pool\\n {2}fix: see \`ebp peers\`; or give HOST:PORT`));
    const unknownName = await lan.ebp(alpha, ['run', 'nobody-here', 'echo', 'hi']);
    assert.equal(unknownName.code, 1);
    assert.match(unknownName.stderr, /no peer called "nobody-here" in the pool/);
  });

  test('`ebp run --any APP` picks a verified peer that offers APP', async () => {
    const poolNames = ['bravo', 'charlie', 'dup', 'dup (2)'];
    const any = await lan.ebp(alpha, ['run', '--any', 'echo', 'hi']);
    assert.equal(any.code, 0, any.stderr);
    assert.equal(any.stdout, 'hi\n');
    const picked = /^ebp: running echo on (.+)$/m.exec(any.stderr)?.[1];
    assert.ok(picked !== undefined && poolNames.includes(picked), any.stderr);
    const where = await lan.ebp(alpha, ['run', '--any', 'where']);
    const on = /running where on (.+)/.exec(where.stderr)?.[1] ?? '';
    const tag = { bravo: 'h2', charlie: 'h3', dup: 'h4', 'dup (2)': 'h5' }[on];
    assert.equal(where.stdout, `${tag ?? '?'}\n`, where.stderr);
    const none = await lan.ebp(alpha, ['run', '--any', 'no-such-app']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no verified peer in the pool offers "no-such-app"/);
  });

  test('`ebp apps --all` lists every app with the peers that offer it', async () => {
    const pool = await lan.ebpJson<{ id: string; peers: string[] }[]>(alpha, ['apps', '--all']);
    const ids = pool.map((app) => app.id).sort();
    assert.deepEqual(ids, ['cat', 'date', 'echo', 'sh', 'where']);
    for (const app of pool) {
      assert.deepEqual([...app.peers].sort(), ['alpha (this machine)', 'bravo', 'charlie', 'dup', 'dup (2)'], `${app.id}: ${app.peers.join(', ')}`);
    }
    const text = await lan.ebp(charlie, ['apps', '--all']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^echo {2}Echo {2}on: .*charlie \(this machine\)/m);
  });

  test('static peers: on a --no-discovery host, `peers add HOST:PORT` shows the peer (pinned once reached), `remove` drops it', async (t) => {
    assert.deepEqual(await lan.peers(lone), []);
    const added = await lan.ebp(lone, ['peers', 'add', bravo.endpoint]);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout, `add: ${bravo.endpoint}\n`);
    const [view] = await peersUntil(lone, 'bravo pinned', (list) => list.length === 1 && list[0]?.status === 'pinned', 5000);
    assert.ok(view !== undefined);
    assert.deepEqual(
      { name: view.name, id: view.id, source: view.source, status: view.status, trusted: view.trusted, port: view.port, addresses: view.addresses, apps: view.apps },
      { name: 'bravo', id: daemonOf(bravo).fingerprint, source: 'static', status: 'pinned', trusted: true, port: 20101, addresses: [bravo.address], apps: DEFAULT_APPS.length + 1 },
    );
    const run = await lan.ebp(lone, ['run', 'bravo', 'where']);
    assert.deepEqual([run.code, run.stdout], [0, 'h2\n'], run.stderr);

    // An address nobody answers on is listed as unreachable.
    const nobody = `${lan.subnet}.250:20101`;
    const began = Date.now();
    assert.equal((await lan.ebp(lone, ['peers', 'add', nobody])).code, 0);
    t.diagnostic(`adding an address nobody answers on took ${Date.now() - began} ms`);
    const withNobody = await peersUntil(lone, 'the unreachable one', (list) => list.some((peer) => peer.addresses.includes(`${lan.subnet}.250`) && peer.status === 'unreachable'), 15_000);
    assert.equal(withNobody.length, 2);
    assert.equal((await lan.ebp(lone, ['peers', 'remove', nobody])).code, 0);

    const removed = await lan.ebp(lone, ['peers', 'remove', bravo.endpoint]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(await lan.peers(lone), []);
    const again = await lan.ebp(lone, ['peers', 'remove', bravo.endpoint]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /is not a static peer/);
  });
});
