// Discovery between real processes on a LAN of network namespaces (a bridge in its own
// namespace, 198.18.x.y/24 plus automatic IPv6 link-local addresses): every node is
// test/fixtures/discovery-node.mjs in its own namespace. Finding each other, TXT updates,
// renames, goodbyes on close, expiry after a crash, name clashes, and a larger LAN.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';

import { type DiscoveryNode, Lab, netnsSkipReason, type PeerInfo, testTxt } from './helpers/netns.js';

const SKIP = netnsSkipReason();
/** Hosts in the scale test (EBP_DISCOVERY_HOSTS, default 12, up to 30). */
const SCALE = Math.min(30, Math.max(3, Number(process.env['EBP_DISCOVERY_HOSTS'] ?? '12')));

function seesAll(node: DiscoveryNode, names: readonly string[]): boolean {
  return names.every((name) => node.peers.get(name)?.verified === true);
}

describe('discovery on a LAN of network namespaces', { skip: SKIP }, () => {
  let lab: Lab;
  const nodes: DiscoveryNode[] = [];
  const names = ['Alpha', 'Bravo', 'Charlie'];

  before(async () => {
    lab = new Lab();
    const hosts = names.map(() => lab.addHost());
    await Promise.all(hosts.map((host) => lab.linkLocalReady(host)));
    names.forEach((name, i) => {
      const host = hosts[i];
      if (host !== undefined) nodes.push(lab.node(host, { name, port: 20100 + i, txt: testTxt(name), ttlSeconds: 3 }));
    });
    await Promise.all(nodes.map((node) => node.ready()));
  });

  after(async () => {
    await lab.destroy();
  });

  const node = (i: number): DiscoveryNode => {
    const found = nodes[i];
    assert.ok(found !== undefined);
    return found;
  };

  it('all hosts find each other: port, verified TXT, IPv4 and IPv6 link-local addresses', async (t: TestContext) => {
    const started = Math.min(...nodes.map((n) => n.events[0]?.t ?? Date.now()));
    await Promise.all(nodes.map((n, i) => n.until('all others', () => seesAll(n, names.filter((_, j) => j !== i)), 10_000)));
    const converged = Math.max(...nodes.flatMap((n) => n.events.filter((e) => e.ev === 'added').map((e) => e.t)));
    t.diagnostic(`3 hosts converged ${converged - started} ms after the first was ready`);
    const bravo = node(0).peers.get('Bravo') as PeerInfo;
    assert.equal(bravo.port, 20101);
    assert.equal(bravo.key, 'bravo@eth0');
    assert.deepEqual(bravo.interfaces, ['eth0']);
    assert.equal(bravo.txt['id'], testTxt('Bravo')['id']);
    assert.equal(bravo.txt['apps'], 3);
    assert.ok(bravo.addresses.includes(node(1).host.address), JSON.stringify(bravo.addresses));
    assert.ok(bravo.addresses.some((address) => /^fe80::[0-9a-f:]+%eth0$/.test(address)), JSON.stringify(bravo.addresses));
    assert.match(bravo.host, /^bravo-[0-9a-f]{6}\.local$/);
    // Nobody lists itself.
    for (const [i, n] of nodes.entries()) assert.equal(n.peers.has(names[i] ?? ''), false);
  });

  it('updateTxt reaches the others as "updated" with the new fields', async () => {
    const since = Date.now();
    node(0).command({ op: 'txt', txt: testTxt('Alpha', { apps: 7, load: '3/8', cat: 'ffff000011112222' }) });
    for (const other of [node(1), node(2)]) {
      const event = await other.event('updated', (e) => (e['peer'] as PeerInfo).instance === 'Alpha', 3000, since);
      const peer = event['peer'] as PeerInfo;
      assert.equal(peer.txt['apps'], 7);
      assert.equal(peer.txt['load'], '3/8');
      assert.equal(peer.txt['cat'], 'ffff000011112222');
      assert.ok(event.t - since < 1000, `update took ${event.t - since} ms`);
    }
  });

  it('rename: the others drop the old name and list the new one', async () => {
    const since = Date.now();
    node(1).command({ op: 'rename', name: 'Bravo Two' });
    await node(1).event('renamed', (e) => e['name'] === 'Bravo Two', 5000, since);
    for (const other of [node(0), node(2)]) {
      await other.until('new name', () => other.peers.get('Bravo Two')?.verified === true && !other.peers.has('Bravo'), 5000);
    }
  });

  it('close() sends goodbyes: the others remove it within one second', async (t: TestContext) => {
    const since = Date.now();
    node(2).command({ op: 'close' });
    await node(2).exited;
    for (const other of [node(0), node(1)]) {
      const event = await other.event('removed', (e) => (e['peer'] as PeerInfo).instance === 'Charlie', 3000, since);
      t.diagnostic(`removed ${event.t - since} ms after close`);
      assert.ok(event.t - since <= 1000, `removed ${event.t - since} ms after close`);
    }
  });

  it('SIGKILL: the others drop it when its records expire (TTL 3 s here, 75 s by default)', async (t: TestContext) => {
    const since = Date.now();
    node(1).child.kill('SIGKILL');
    const event = await node(0).event('removed', (e) => (e['peer'] as PeerInfo).instance === 'Bravo Two', 6000, since);
    t.diagnostic(`removed ${event.t - since} ms after SIGKILL`);
    assert.ok(event.t - since <= 3000 + 300, `removed ${event.t - since} ms after SIGKILL`);
  });

  it('a name clash between two hosts: one keeps the name, the other becomes "name (2)"', async () => {
    const twins = [lab.addHost(), lab.addHost()];
    await Promise.all(twins.map((host) => lab.linkLocalReady(host)));
    const pair = twins.map((host, i) => lab.node(host, { name: 'Twin', port: 20200, txt: testTxt(`twin${i}`), ttlSeconds: 3 }));
    nodes.push(...pair);
    await Promise.all(pair.map((n) => n.ready()));
    const watcher = node(0);
    await watcher.until('both twins', () => seesAll(watcher, ['Twin', 'Twin (2)']), 8000);
    const final = pair.map((n) => n.instance()).sort();
    assert.deepEqual(final, ['Twin', 'Twin (2)']);
    // They see each other under the final names.
    const [first, second] = pair as [DiscoveryNode, DiscoveryNode];
    await first.until('other twin', () => first.peers.has(second.instance() ?? ''), 5000);
    await second.until('other twin', () => second.peers.has(first.instance() ?? ''), 5000);
  });
});

describe('discovery on a host with two links', { skip: SKIP }, () => {
  let lab: Lab;

  before(() => {
    lab = new Lab();
  });

  after(async () => {
    await lab.destroy();
  });

  // X has eth0 on br0 and eth1 on br1; Y is on br0 only, Z on br1 only. On X run "Only Eth0"
  // (interfaces: eth0) and "Both Links" (default: all interfaces) side by side.
  it('uses only the selected interfaces, for receiving and sending, and keys peers per link', async () => {
    const x = lab.addHost();
    const y = lab.addHost();
    const z = lab.addHost();
    const br1 = lab.addBridge();
    // Move Z to br1 only: drop its br0 link and give it one on br1.
    const zOnBr1 = lab.connect(z, br1, 'eth1');
    lab.exec(z.ns, 'ip', ['link', 'del', 'eth0']);
    const xOnBr1 = lab.connect(x, br1, 'eth1');
    await Promise.all([lab.linkLocalReady(x), lab.linkLocalReady(x, 5000, 'eth1'), lab.linkLocalReady(y), lab.linkLocalReady(z, 5000, 'eth1')]);
    const only = lab.node(x, { name: 'Only Eth0', port: 20500, txt: testTxt('only'), interfaces: ['eth0'] });
    const both = lab.node(x, { name: 'Both Links', port: 20501, txt: testTxt('both'), interfaces: undefined });
    const nodeY = lab.node(y, { name: 'Node Y', port: 20502, txt: testTxt('y'), interfaces: undefined });
    const nodeZ = lab.node(z, { name: 'Node Z', port: 20503, txt: testTxt('z'), interfaces: undefined });
    await Promise.all([only, both, nodeY, nodeZ].map((n) => n.ready()));
    await both.until('Y, Z and Only Eth0', () => seesAll(both, ['Node Y', 'Node Z', 'Only Eth0']), 10_000);
    await nodeY.until('both on X', () => seesAll(nodeY, ['Only Eth0', 'Both Links']), 10_000);
    await nodeZ.until('Both Links', () => seesAll(nodeZ, ['Both Links']), 10_000);
    await only.until('Y and Both Links', () => seesAll(only, ['Node Y', 'Both Links']), 10_000);
    const zSeen = both.peers.get('Node Z') as PeerInfo;
    assert.equal(zSeen.key, 'node z@eth1');
    assert.deepEqual(zSeen.interfaces, ['eth1']);
    assert.ok(zSeen.addresses.includes(zOnBr1), JSON.stringify(zSeen.addresses));
    assert.equal((both.peers.get('Node Y') as PeerInfo).key, 'node y@eth0');
    // Z announces Both Links with X's br1 address only (per-interface address records).
    const fromZ = nodeZ.peers.get('Both Links') as PeerInfo;
    assert.ok(fromZ.addresses.includes(xOnBr1) && !fromZ.addresses.includes(x.address), JSON.stringify(fromZ.addresses));
    // Give them a few more query rounds: Only Eth0 never hears Z, Z never hears Only Eth0.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(only.peers.has('Node Z'), false);
    assert.equal(nodeZ.peers.has('Only Eth0'), false);
    const stats = (await only.stats())['stats'] as { offLink: number };
    assert.ok(stats.offLink > 0, 'Only Eth0 never had to drop a packet from the other link');
  });
});

describe(`discovery with ${SCALE} hosts`, { skip: SKIP }, () => {
  let lab: Lab;

  before(() => {
    lab = new Lab();
  });

  after(async () => {
    await lab.destroy();
  });

  it('every host sees every other one', async (t: TestContext) => {
    const hosts = Array.from({ length: SCALE }, () => lab.addHost());
    await Promise.all(hosts.map((host) => lab.linkLocalReady(host)));
    const names = hosts.map((_, i) => `Node ${String(i + 1).padStart(2, '0')}`);
    const started = Date.now();
    const nodes = hosts.map((host, i) => lab.node(host, { name: names[i], port: 20300 + i, txt: testTxt(names[i] ?? '') }));
    await Promise.all(nodes.map((n) => n.ready(30_000)));
    const ready = Date.now();
    await Promise.all(nodes.map((n, i) => n.until('everyone', () => seesAll(n, names.filter((_, j) => j !== i)), 20_000)));
    t.diagnostic(`${SCALE} hosts: all ready after ${ready - started} ms (process start included), all see all after ${Date.now() - started} ms`);
    const stats = await Promise.all(nodes.slice(0, 3).map((n) => n.stats()));
    for (const entry of stats) {
      const s = entry['stats'] as { errors: number; malformed: number; conflicts: number };
      assert.equal(s.errors, 0);
      assert.equal(s.malformed, 0);
      assert.equal(s.conflicts, 0);
    }
  });
});
