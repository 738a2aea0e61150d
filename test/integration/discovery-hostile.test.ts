// Live hostile traffic: a raw UDP sender in its own namespace (test/fixtures/discovery-blaster.mjs)
// blasts malformed and malicious mDNS packets at 224.0.0.251 and ff02::fb port 5353 for 2 s while
// a discovery node runs. Afterwards the node still lists the valid peer, still finds a new one,
// its tables stay within their caps and its heap (after a forced GC) has not grown unboundedly.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';

import { type DiscoveryNode, Lab, type LabHost, netnsSkipReason, ROOT, testTxt } from './helpers/netns.js';

const SKIP = netnsSkipReason();
const BLASTER = join(ROOT, 'test', 'fixtures', 'discovery-blaster.mjs');

interface Stats {
  received: number;
  malformed: number;
  rateLimited: number;
  errors: number;
  cache: { instances: number; hosts: number; records: number };
}

describe('discovery under a packet blast', { skip: SKIP }, () => {
  let lab: Lab;
  let target: DiscoveryNode;
  let valid: DiscoveryNode;
  let hosts: LabHost[];

  before(async () => {
    lab = new Lab();
    hosts = [lab.addHost(), lab.addHost(), lab.addHost(), lab.addHost()];
    await Promise.all(hosts.map((host) => lab.linkLocalReady(host)));
    const [h1, h2] = hosts as [LabHost, LabHost];
    target = lab.node(h1, { name: 'Target', port: 20400, txt: testTxt('target') }, ['--expose-gc']);
    valid = lab.node(h2, { name: 'Valid', port: 20401, txt: testTxt('valid') });
    await Promise.all([target.ready(), valid.ready()]);
    await target.until('Valid', () => target.peers.get('Valid')?.verified === true, 10_000);
  });

  after(async () => {
    await lab.destroy();
  });

  it('keeps working, within its caps and bounded memory', async (t: TestContext) => {
    const before = await target.stats();
    const heapBefore = (before['memory'] as NodeJS.MemoryUsage).heapUsed;
    const blasterHost = hosts[2] as LabHost;
    const blaster = lab.spawn(blasterHost.ns, process.execPath, [BLASTER, JSON.stringify({ seconds: 2, interface: 'eth0', address: blasterHost.address })]);
    let output = '';
    blaster.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    blaster.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => blaster.once('exit', resolve));
    assert.equal(code, 0, output);
    const blast = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as { sent: number; errors: number };
    assert.ok(blast.sent > 1000, `blaster sent only ${blast.sent} packets`);

    // Still alive, still listing the valid peer, still finding a newcomer.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const peers = await target.snapshot();
    assert.ok(peers.some((peer) => peer.instance === 'Valid' && peer.verified), JSON.stringify(peers.map((p) => p.instance)));
    const late = lab.node(hosts[3] as LabHost, { name: 'Late', port: 20402, txt: testTxt('late') });
    await late.ready();
    await target.until('Late', () => target.peers.get('Late')?.verified === true, 10_000);
    await late.until('Target', () => late.peers.get('Target')?.verified === true, 10_000);

    const afterStats = await target.stats();
    const stats = afterStats['stats'] as Stats;
    const heapAfter = (afterStats['memory'] as NodeJS.MemoryUsage).heapUsed;
    t.diagnostic(
      `blaster sent ${blast.sent} packets in 2 s; target received ${stats.received}, malformed ${stats.malformed}, rate-limited ${stats.rateLimited}; ` +
        `cache ${JSON.stringify(stats.cache)}; heap ${Math.round(heapBefore / 1024)} KiB → ${Math.round(heapAfter / 1024)} KiB`,
    );
    assert.equal(stats.errors, 0);
    assert.ok(stats.malformed > 0);
    assert.ok(stats.rateLimited > 0);
    // One source address introduces at most 64 instances per link; the blaster has two (IPv4 and
    // IPv6 link-local); plus Valid, Late and ourselves.
    assert.ok(stats.cache.instances <= 2 * 64 + 3, `instances: ${stats.cache.instances}`);
    assert.ok(heapAfter - heapBefore < 16 * 1024 * 1024, `heap grew by ${heapAfter - heapBefore} bytes`);
    // The fake instances are listed as unverified at worst, never as verified peers.
    const now = await target.snapshot();
    for (const peer of now) if (peer.instance.startsWith('fake ')) assert.equal(peer.verified, false);
  });
});
