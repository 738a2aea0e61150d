// Hostile input, property-based: random bytes, mutated valid packets and structurally valid but
// malicious messages (contradictory SRVs, addresses for other names, goodbyes for unknown
// records, oversized TXT, control characters, a flood of instances, probes for our own name)
// go through the decoder, the record cache and the whole receive path. Nothing may throw out of
// the receive path, no internal error may be counted, the tables stay within their caps and every
// reported peer is well-formed.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import fc from 'fast-check';

import { CACHE_LIMITS, PeerCache, type DiscoveredPeer } from '../../src/discovery/cache.js';
import { DiscoveryCore } from '../../src/discovery/core.js';
import { instanceFqdn, SERVICE_NAME, SERVICES_ENUMERATION } from '../../src/discovery/names.js';
import { peerTxtProblem, type PeerTxt } from '../../src/discovery/txt.js';
import {
  CLASS_IN,
  decodeMessage,
  encodeMessage,
  FLAG_AUTHORITATIVE,
  FLAG_RESPONSE,
  type Message,
  type Name,
  parseIpv4,
  parseIpv6,
  type RData,
  type ResourceRecord,
  TYPE,
  WireError,
} from '../../src/discovery/wire.js';

const RUNS = Number(process.env['EBP_FUZZ_RUNS'] ?? '300');
const OUR_NAME = 'Fuzz Target';
const TXT: PeerTxt = { v: '1', id: `SHA256:${'Q'.repeat(43)}`, apps: 1, cat: 'ff', load: '1/2' };

// ---------------------------------------------------------------------------------------------
// Arbitraries

const label = fc
  .oneof(
    fc.constantFrom('x', 'Alice', 'alice', 'ALICE', OUR_NAME, 'a.b', 'evil\u202e', 'nul\u0000', '_tcp', 'local', '_ebrainpool', 'ü'.repeat(31)),
    fc.string({ minLength: 1, maxLength: 20, unit: 'grapheme' }),
    fc.string({ minLength: 1, maxLength: 63, unit: 'binary' }),
  )
  .filter((text) => text.length > 0 && Buffer.byteLength(text, 'utf8') <= 63);

const name: fc.Arbitrary<Name> = fc.oneof(
  fc.constant(SERVICE_NAME),
  fc.constant(SERVICES_ENUMERATION),
  label.map((l) => instanceFqdn(l)),
  label.map((l) => [l, 'local']),
  fc.array(label, { minLength: 1, maxLength: 4 }),
);

const ttl = fc.constantFrom(0, 1, 2, 75, 120, 4500, 0xffffffff);
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join('.'));
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(':');
});
const txtString = fc.oneof(
  fc.constantFrom('v=1', 'v=999', 'v=x', `id=${TXT.id}`, 'id=SHA256:short', 'apps=5', 'apps=999999', 'cat=00ff', 'cat=XYZ', 'load=1/2', 'load=1/2/3', '__proto__=1', 'constructor', '=x', ''),
  fc.string({ maxLength: 255, unit: 'binary' }).filter((text) => Buffer.byteLength(text, 'utf8') <= 255),
).map((text) => Buffer.from(text, 'utf8'));

const rdata: fc.Arbitrary<[number, RData]> = fc.oneof(
  name.map((target): [number, RData] => [TYPE.PTR, { kind: 'PTR', target }]),
  fc.record({ port: fc.nat(65535), target: name }).map(({ port, target }): [number, RData] => [TYPE.SRV, { kind: 'SRV', priority: 0, weight: 0, port, target }]),
  fc.oneof(fc.array(txtString, { maxLength: 12 }), fc.constant(Array.from({ length: 8 }, () => Buffer.alloc(250, 0x61)))).map((strings): [number, RData] => [TYPE.TXT, { kind: 'TXT', strings }]),
  ipv4.map((address): [number, RData] => [TYPE.A, { kind: 'A', address }]),
  ipv6.map((address): [number, RData] => [TYPE.AAAA, { kind: 'AAAA', address }]),
  fc.uint8Array({ maxLength: 40 }).map((bytes): [number, RData] => [TYPE.NSEC + 1, { kind: 'raw', bytes: Buffer.from(bytes) }]),
);

const record: fc.Arbitrary<ResourceRecord> = fc
  .record({ name, data: rdata, ttl, flush: fc.boolean(), cls: fc.constantFrom(CLASS_IN, CLASS_IN, 3) })
  .map(({ name: n, data, ttl: t, flush, cls }) => ({ name: n, type: data[0], cls, flush, ttl: t, data: data[1] }));

/** A coherent service announcement (PTR, SRV, TXT, addresses), often contradicting itself. */
const service: fc.Arbitrary<ResourceRecord[]> = fc
  .record({ instance: label, host: label, port: fc.nat(65535), port2: fc.nat(65535), txt: fc.array(txtString, { maxLength: 8 }), v4: fc.array(ipv4, { maxLength: 20 }), v6: fc.array(ipv6, { maxLength: 4 }), ttl, second: fc.boolean() })
  .map(({ instance, host, port, port2, txt, v4, v6, ttl: t, second }) => {
    const fqdn = instanceFqdn(instance);
    const target = [host, 'local'];
    const records: ResourceRecord[] = [
      { name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: t, data: { kind: 'PTR', target: fqdn } },
      { name: fqdn, type: TYPE.SRV, cls: CLASS_IN, flush: true, ttl: t, data: { kind: 'SRV', priority: 0, weight: 0, port, target } },
      { name: fqdn, type: TYPE.TXT, cls: CLASS_IN, flush: true, ttl: t, data: { kind: 'TXT', strings: txt } },
      ...v4.map((address): ResourceRecord => ({ name: target, type: TYPE.A, cls: CLASS_IN, flush: true, ttl: t, data: { kind: 'A', address } })),
      ...v6.map((address): ResourceRecord => ({ name: target, type: TYPE.AAAA, cls: CLASS_IN, flush: true, ttl: t, data: { kind: 'AAAA', address } })),
    ];
    if (second) records.push({ name: fqdn, type: TYPE.SRV, cls: CLASS_IN, flush: false, ttl: t, data: { kind: 'SRV', priority: 0, weight: 0, port: port2, target: ['elsewhere', 'local'] } });
    return records;
  });

const message: fc.Arbitrary<Message> = fc
  .record({
    response: fc.boolean(),
    questions: fc.array(fc.record({ name, type: fc.constantFrom(TYPE.PTR, TYPE.SRV, TYPE.ANY, TYPE.A), qu: fc.boolean() }), { maxLength: 4 }),
    answers: fc.oneof(fc.array(record, { maxLength: 12 }), service),
    authorities: fc.array(record, { maxLength: 4 }),
    additionals: fc.array(record, { maxLength: 8 }),
  })
  .map(({ response, questions, answers, authorities, additionals }) => ({
    id: 0,
    flags: response ? FLAG_RESPONSE | FLAG_AUTHORITATIVE : 0,
    questions: questions.map((q) => ({ ...q, cls: CLASS_IN })),
    answers,
    authorities,
    additionals,
  }));

const validPacket = message.map((m) => {
  try {
    return encodeMessage(m);
  } catch {
    return Buffer.alloc(12);
  }
});

/** Valid packets with random byte changes, truncations and splices. */
const mutated = fc
  .tuple(validPacket, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 8 }), fc.option(fc.nat()), fc.uint8Array({ maxLength: 16 }))
  .map(([packet, changes, cut, junk]) => {
    const copy = Buffer.from(packet);
    for (const [at, value] of changes) if (copy.length > 0) copy[at % copy.length] = value;
    const cutAt = cut === null ? copy.length : cut % (copy.length + 1);
    return Buffer.concat([copy.subarray(0, cutAt), Buffer.from(junk)]);
  });

const anyPacket = fc.oneof(fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes)), validPacket, mutated);

// ---------------------------------------------------------------------------------------------

function checkPeer(peer: DiscoveredPeer): void {
  assert.ok(Buffer.byteLength(peer.instance, 'utf8') <= 63, 'instance too long');
   
  assert.doesNotMatch(peer.instance, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
   
  assert.doesNotMatch(peer.host, /[\u0000-\u001f\u007f-\u009f]/);
  assert.ok(peer.addresses.length >= 1 && peer.addresses.length <= CACHE_LIMITS.maxAddressesPerHost, `addresses: ${peer.addresses.length}`);
  for (const address of peer.addresses) assert.ok(parseIpv4(address) !== undefined || parseIpv6(address) !== undefined, address);
  assert.ok(Number.isInteger(peer.port) && peer.port >= 0 && peer.port <= 65535);
  assert.equal(Object.getPrototypeOf(peer.txt.raw), null);
  if (peer.verified) {
    const { v, id, apps, cat, load } = peer.txt;
    assert.ok(v !== undefined && id !== undefined && apps !== undefined && cat !== undefined && load !== undefined);
    assert.equal(peerTxtProblem({ v, id, apps, cat, load }), undefined);
  }
  if (peer.txt.id !== undefined) assert.match(peer.txt.id, /^SHA256:[A-Za-z0-9+/]{43}$/);
}

interface Harness {
  readonly core: DiscoveryCore;
  readonly peers: DiscoveredPeer[];
  tick(ms: number): void;
}

const cores: DiscoveryCore[] = [];
after(() => {
  for (const core of cores) core.close();
});

function harness(): Harness {
  let offset = 0;
  const peers: DiscoveredPeer[] = [];
  const base = Date.now();
  const core = new DiscoveryCore(
    { name: OUR_NAME, port: 2222, txt: TXT, announce: true, browse: true, ttlSeconds: 75, hostname: 'fuzz', now: () => base + offset },
    { send: (_link, packet) => { assert.ok(packet.length <= 9000); } },
    { peer: (_kind, peer) => peers.push(peer), renamed: () => undefined },
  );
  core.setLinks([{ name: 'eth0', v4: [{ address: '198.18.3.1', prefix: 24 }], v6: [{ address: 'fe80::1', prefix: 64 }] }]);
  cores.push(core);
  return {
    core,
    peers,
    tick: (ms) => {
      offset += ms;
    },
  };
}

function receiveAll(target: Harness, packets: readonly Buffer[]): void {
  for (const [i, packet] of packets.entries()) {
    target.tick(30);
    assert.doesNotThrow(() => { target.core.receive('eth0', packet, { address: `198.18.3.${(i % 200) + 2}`, port: i % 7 === 0 ? 40000 : 5353 }); });
  }
  assert.equal(target.core.stats.errors, 0, 'an internal error was counted');
  const size = target.core.cacheSize();
  assert.ok(size.instances <= CACHE_LIMITS.maxInstances);
  for (const peer of target.peers) checkPeer(peer);
  for (const peer of target.core.peers()) checkPeer(peer);
}

describe('discovery under hostile input', () => {
  it('the decoder throws nothing but WireError on random bytes and mutated packets', () => {
    fc.assert(
      fc.property(anyPacket, (packet) => {
        try {
          decodeMessage(packet);
        } catch (error) {
          assert.ok(error instanceof WireError, String(error));
        }
      }),
      { numRuns: RUNS * 10 },
    );
  });

  it('the decoder terminates on arbitrary compression pointer chains', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(0x3fff)), { minLength: 1, maxLength: 200 }), (steps) => {
        const body = Buffer.concat(steps.map(([pointer, value]) => (pointer ? Buffer.from([0xc0 | (value >> 8), value & 0xff]) : Buffer.from([1, 0x61]))));
        const packet = Buffer.concat([Buffer.from([0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0]), body, Buffer.from([0, 0, 1, 0, 1])]);
        try {
          decodeMessage(packet);
        } catch (error) {
          assert.ok(error instanceof WireError);
        }
      }),
      { numRuns: RUNS * 5 },
    );
  });

  it('the receive path survives every kind of packet, while probing and once established', async () => {
    const probing = harness();
    void probing.core.start();
    const established = harness();
    await established.core.start();
    fc.assert(
      fc.property(fc.array(anyPacket, { minLength: 1, maxLength: 30 }), (packets) => {
        receiveAll(probing, packets);
        receiveAll(established, packets);
      }),
      { numRuns: RUNS },
    );
    // The generators reach every part: malformed packets, and real peers reported.
    assert.ok(established.core.stats.malformed > 0);
    assert.ok(established.peers.length > 0, 'no fuzzed service was ever reported as a peer');
    assert.ok(established.core.stats.sent > 0);
  });

  it('the record cache stays within its caps and reports only well-formed peers over time', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.oneof(service, fc.array(record, { maxLength: 10 })), fc.nat(5000)), { minLength: 1, maxLength: 40 }), (batches) => {
        let now = 1_000_000;
        const events: DiscoveredPeer[] = [];
        const cache = new PeerCache({ now: () => now, onEvent: (_kind, peer) => events.push(peer) });
        for (const [records, advance] of batches) {
          cache.ingest('eth0', records);
          now += advance;
          if (cache.nextDeadline() <= now) {
            for (const questions of cache.sweep().values()) {
              // Every question we would send can be encoded.
              encodeMessage({ id: 0, flags: 0, questions, answers: [], authorities: [], additionals: [] });
            }
          }
        }
        for (const peer of [...events, ...cache.peers()]) checkPeer(peer);
        // Everything expires in the end (TTLs are capped).
        now += CACHE_LIMITS.maxTtlSeconds * 1000 + 1;
        cache.sweep();
        assert.deepEqual(cache.peers(), []);
        assert.deepEqual(cache.size(), { instances: 0, hosts: 0, records: 0 });
      }),
      { numRuns: RUNS },
    );
  });

  it('a flood of instances is capped at the table size', () => {
    const now = 5_000_000;
    let added = 0;
    const cache = new PeerCache({ now: () => now, onEvent: (kind) => (added += kind === 'added' ? 1 : 0) });
    for (let i = 0; i < 3000; i += 1) {
      const fqdn = instanceFqdn(`flood ${i}`);
      const host = [`h${i}`, 'local'];
      cache.ingest('eth0', [
        { name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: 4500, data: { kind: 'PTR', target: fqdn } },
        { name: fqdn, type: TYPE.SRV, cls: CLASS_IN, flush: true, ttl: 4500, data: { kind: 'SRV', priority: 0, weight: 0, port: 1, target: host } },
        { name: fqdn, type: TYPE.TXT, cls: CLASS_IN, flush: true, ttl: 4500, data: { kind: 'TXT', strings: [] } },
        ...Array.from({ length: 40 }, (_, j): ResourceRecord => ({ name: host, type: TYPE.A, cls: CLASS_IN, flush: false, ttl: 4500, data: { kind: 'A', address: `198.18.${j}.${i % 250}` } })),
      ]);
    }
    assert.equal(cache.size().instances, CACHE_LIMITS.maxInstances);
    assert.equal(cache.refused, 3000 - CACHE_LIMITS.maxInstances);
    assert.equal(added, CACHE_LIMITS.maxInstances);
    assert.ok(cache.size().records <= CACHE_LIMITS.maxInstances * (3 + CACHE_LIMITS.maxAddressesPerHost));
    for (const peer of cache.peers()) assert.equal(peer.addresses.length, CACHE_LIMITS.maxAddressesPerHost);
  });

  it('one source address cannot take more than its share of the table', () => {
    const cache = new PeerCache({ now: () => 1000, onEvent: () => undefined });
    const ptr = (i: number): ResourceRecord => ({ name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: 4500, data: { kind: 'PTR', target: instanceFqdn(`s${i}`) } });
    cache.ingest('eth0', Array.from({ length: 200 }, (_, i) => ptr(i)), '198.18.0.66');
    assert.equal(cache.size().instances, CACHE_LIMITS.maxInstancesPerSource);
    cache.ingest('eth0', Array.from({ length: 200 }, (_, i) => ptr(1000 + i)), '198.18.0.67');
    assert.equal(cache.size().instances, 2 * CACHE_LIMITS.maxInstancesPerSource);
  });

  it('queries for many missing records are split into packets that fit', async () => {
    const sent: Buffer[] = [];
    const core = new DiscoveryCore(
      { name: 'Asker', port: 2222, txt: TXT, announce: false, browse: true, ttlSeconds: 75, hostname: 'fuzz' },
      { send: (_link, packet) => sent.push(packet) },
      { peer: () => undefined, renamed: () => undefined },
    );
    cores.push(core);
    core.setLinks([{ name: 'eth0', v4: [{ address: '198.18.3.1', prefix: 24 }], v6: [] }]);
    await core.start();
    for (let source = 0; source < 16; source += 1) {
      const answers = Array.from({ length: 64 }, (_, i): ResourceRecord => ({
        name: SERVICE_NAME,
        type: TYPE.PTR,
        cls: CLASS_IN,
        flush: false,
        ttl: 4500,
        data: { kind: 'PTR', target: instanceFqdn(`${'long name '.repeat(5)}${source}-${i}`) },
      }));
      core.receive('eth0', encodeMessage({ id: 0, flags: FLAG_RESPONSE, questions: [], answers, authorities: [], additionals: [] }), { address: `198.18.3.${source + 2}`, port: 5353 });
    }
    assert.equal(core.cacheSize().instances, 1024);
    sent.length = 0;
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const questions = sent.map((packet) => decodeMessage(packet)).flatMap((m) => m.questions);
    assert.ok(sent.length > 10, `only ${sent.length} packets`);
    assert.ok(sent.every((packet) => packet.length <= 1500));
    // SRV and TXT asked for every instance (plus the browse PTR query).
    assert.ok(questions.filter((q) => q.type === TYPE.SRV).length >= 1024);
    core.close();
  });

  it('goodbyes for records never seen, and records for unrelated names, change nothing', () => {
    const now = 1000;
    const events: string[] = [];
    const cache = new PeerCache({ now: () => now, onEvent: (kind) => events.push(kind) });
    cache.ingest('eth0', [
      { name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: 0, data: { kind: 'PTR', target: instanceFqdn('ghost') } },
      { name: instanceFqdn('ghost'), type: TYPE.SRV, cls: CLASS_IN, flush: true, ttl: 120, data: { kind: 'SRV', priority: 0, weight: 0, port: 1, target: ['g', 'local'] } },
      { name: ['g', 'local'], type: TYPE.A, cls: CLASS_IN, flush: true, ttl: 120, data: { kind: 'A', address: '198.18.0.1' } },
      { name: ['_other', '_tcp', 'local'], type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: 120, data: { kind: 'PTR', target: ['x', '_other', '_tcp', 'local'] } },
    ]);
    assert.deepEqual(cache.size(), { instances: 0, hosts: 0, records: 0 });
    assert.deepEqual(events, []);
  });

  it('of two SRV records for one instance the newest wins, and a cache-flush retires the other', () => {
    let now = 1000;
    const cache = new PeerCache({ now: () => now, onEvent: () => undefined });
    const fqdn = instanceFqdn('dual');
    const srv = (port: number, host: string, flush: boolean): ResourceRecord => ({ name: fqdn, type: TYPE.SRV, cls: CLASS_IN, flush, ttl: 120, data: { kind: 'SRV', priority: 0, weight: 0, port, target: [host, 'local'] } });
    const a = (host: string, address: string): ResourceRecord => ({ name: [host, 'local'], type: TYPE.A, cls: CLASS_IN, flush: true, ttl: 120, data: { kind: 'A', address } });
    cache.ingest('eth0', [
      { name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: 120, data: { kind: 'PTR', target: fqdn } },
      srv(1, 'one', false),
      { name: fqdn, type: TYPE.TXT, cls: CLASS_IN, flush: true, ttl: 120, data: { kind: 'TXT', strings: [] } },
      a('one', '198.18.0.1'),
    ]);
    now += 2000;
    cache.ingest('eth0', [srv(2, 'two', true), a('two', '198.18.0.2')]);
    assert.equal(cache.peers()[0]?.port, 2);
    assert.deepEqual(cache.peers()[0]?.addresses, ['198.18.0.2']);
    now += 1500;
    cache.sweep();
    assert.equal(cache.size().hosts, 1);
  });
});
