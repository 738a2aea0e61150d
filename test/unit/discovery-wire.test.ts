// DNS wire codec: round trips, compression, mDNS class bits, hard limits, and a cross-check
// against an independent implementation (dns-packet) in both directions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import dnsPacket from 'dns-packet';
import fc from 'fast-check';

import {
  CLASS_IN,
  decodeMessage,
  encodeMessage,
  FLAG_AUTHORITATIVE,
  FLAG_RESPONSE,
  formatIpv6,
  type Message,
  parseIpv4,
  parseIpv6,
  TYPE,
  WireError,
} from '../../src/discovery/wire.js';

const instance = ['Alice.s laptop (2) ünï', '_ebrainpool', '_tcp', 'local'];
const host = ['alice-0a1b2c', 'local'];

function sample(): Message {
  return {
    id: 0,
    flags: FLAG_RESPONSE | FLAG_AUTHORITATIVE,
    questions: [{ name: ['_ebrainpool', '_tcp', 'local'], type: TYPE.PTR, cls: CLASS_IN, qu: true }],
    answers: [
      { name: ['_ebrainpool', '_tcp', 'local'], type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: 75, data: { kind: 'PTR', target: instance } },
      { name: instance, type: TYPE.SRV, cls: CLASS_IN, flush: true, ttl: 75, data: { kind: 'SRV', priority: 0, weight: 0, port: 2222, target: host } },
      { name: instance, type: TYPE.TXT, cls: CLASS_IN, flush: true, ttl: 75, data: { kind: 'TXT', strings: [Buffer.from('v=1'), Buffer.from('apps=3')] } },
    ],
    authorities: [],
    additionals: [
      { name: host, type: TYPE.A, cls: CLASS_IN, flush: true, ttl: 75, data: { kind: 'A', address: '198.18.0.7' } },
      { name: host, type: TYPE.AAAA, cls: CLASS_IN, flush: true, ttl: 75, data: { kind: 'AAAA', address: 'fe80::1:2' } },
      { name: host, type: TYPE.NSEC, cls: CLASS_IN, flush: true, ttl: 75, data: { kind: 'NSEC', next: host, types: [TYPE.A, TYPE.AAAA] } },
      { name: host, type: 99, cls: CLASS_IN, flush: false, ttl: 1, data: { kind: 'raw', bytes: Buffer.from([1, 2, 3]) } },
    ],
  };
}

describe('discovery wire codec', () => {
  it('round-trips every record kind, with labels that contain dots, spaces and UTF-8', () => {
    const message = sample();
    const decoded = decodeMessage(encodeMessage(message));
    assert.deepEqual(decoded, message);
  });

  it('compresses repeated names', () => {
    const packet = encodeMessage(sample());
    const uncompressedNames = Buffer.byteLength(instance.join('..'), 'utf8') * 3;
    assert.ok(packet.length < uncompressedNames + 150, `packet of ${packet.length} bytes is not compressed`);
  });

  it('keeps the QU and cache-flush bits apart from the class', () => {
    const decoded = decodeMessage(encodeMessage(sample()));
    const question = decoded.questions[0];
    assert.ok(question !== undefined);
    assert.equal(question.qu, true);
    assert.equal(question.cls, CLASS_IN);
    assert.equal(decoded.answers[1]?.flush, true);
    assert.equal(decoded.answers[0]?.flush, false);
  });

  it('agrees with dns-packet in both directions', () => {
    // Ours → dns-packet (names without dots inside labels, which dns-packet cannot express).
    const plain = ['Alice laptop', '_ebrainpool', '_tcp', 'local'];
    const ours = encodeMessage({
      ...sample(),
      answers: [
        { name: ['_ebrainpool', '_tcp', 'local'], type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: 75, data: { kind: 'PTR', target: plain } },
        { name: plain, type: TYPE.SRV, cls: CLASS_IN, flush: true, ttl: 75, data: { kind: 'SRV', priority: 1, weight: 2, port: 2222, target: host } },
      ],
      additionals: [{ name: host, type: TYPE.AAAA, cls: CLASS_IN, flush: true, ttl: 120, data: { kind: 'AAAA', address: 'fd00::2' } }],
    });
    const theirs = dnsPacket.decode(ours);
    assert.equal(theirs.type, 'response');
    const ptr = theirs.answers?.[0];
    assert.equal(ptr?.type, 'PTR');
    assert.equal(ptr.data, 'Alice laptop._ebrainpool._tcp.local');
    const srv = theirs.answers?.[1];
    assert.equal(srv?.type, 'SRV');
    assert.deepEqual(srv.data, { priority: 1, weight: 2, port: 2222, target: 'alice-0a1b2c.local' });
    assert.equal(srv.flush, true);
    const aaaa = theirs.additionals?.[0];
    assert.equal(aaaa?.type, 'AAAA');
    assert.equal(aaaa.data, 'fd00::2');
    // dns-packet → ours.
    const packet = dnsPacket.encode({
      type: 'response',
      id: 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      questions: [{ type: 'PTR', name: '_ebrainpool._tcp.local' }],
      answers: [
        { type: 'TXT', name: 'x._ebrainpool._tcp.local', ttl: 4500, flush: true, data: ['v=1', 'id=abc'] },
        { type: 'A', name: 'x.local', ttl: 120, data: '198.18.1.2' },
      ],
    });
    const decoded = decodeMessage(packet);
    assert.equal(decoded.flags & FLAG_RESPONSE, FLAG_RESPONSE);
    const first = decoded.answers[0];
    assert.ok(first !== undefined);
    assert.deepEqual(first.name, ['x', '_ebrainpool', '_tcp', 'local']);
    assert.deepEqual(first.data, { kind: 'TXT', strings: [Buffer.from('v=1'), Buffer.from('id=abc')] });
    assert.equal(first.flush, true);
    assert.equal(first.ttl, 4500);
    assert.deepEqual(decoded.answers[1]?.data, { kind: 'A', address: '198.18.1.2' });
  });

  it('refuses compression loops, forward pointers and self pointers', () => {
    const header = Buffer.from([0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    // Question name at 12 is a pointer to itself.
    const self = Buffer.concat([header, Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    assert.throws(() => decodeMessage(self), WireError);
    // Pointer forward to a later label that points back: a loop.
    const loop = Buffer.concat([header, Buffer.from([0xc0, 18, 0, 1, 0, 1, 1, 0x61, 0xc0, 12])]);
    assert.throws(() => decodeMessage(loop), WireError);
    // Label then pointer into the same name (12 → 14 → 12 ...).
    const inner = Buffer.concat([header, Buffer.from([1, 0x61, 0xc0, 12, 0, 1, 0, 1])]);
    assert.throws(() => decodeMessage(inner), WireError);
  });

  it('enforces size, count, label and name limits', () => {
    assert.throws(() => decodeMessage(Buffer.alloc(9001)), /too large/);
    assert.throws(() => decodeMessage(Buffer.alloc(11)), WireError);
    const many = Buffer.from([0, 0, 0, 0, 0x01, 0x01, 0, 0, 0, 0, 0, 0]);
    assert.throws(() => decodeMessage(many), /too many/);
    // A 64-byte label is an extended label type (0x40): refused.
    const label64 = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]);
    assert.throws(() => decodeMessage(label64), WireError);
    // 5 labels of 63 bytes: over 255.
    const long = Buffer.concat([
      Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x62)])),
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    assert.throws(() => decodeMessage(long), /255/);
    assert.throws(() => encodeMessage({ ...sample(), questions: [{ name: ['x'.repeat(64)], type: 1, cls: 1, qu: false }] }), WireError);
  });

  it('throws only WireError for every truncation and every single-byte change of a valid packet', () => {
    const packet = encodeMessage(sample());
    for (let length = 0; length < packet.length; length += 1) {
      assert.throws(() => decodeMessage(packet.subarray(0, length)), WireError);
    }
    for (let i = 0; i < packet.length; i += 1) {
      for (const value of [0x00, 0x3f, 0x40, 0xc0, 0xff]) {
        const copy = Buffer.from(packet);
        copy[i] = value;
        try {
          decodeMessage(copy);
        } catch (error) {
          assert.ok(error instanceof WireError, `byte ${i} = ${value}: ${String(error)}`);
        }
      }
    }
  });

  it('formats IPv6 like the WHATWG URL parser (RFC 5952) and parses it back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (bytes, zeros) => {
        const buf = Buffer.from(bytes);
        if (zeros) buf.fill(0, 4, 10);
        const text = formatIpv6(buf);
        assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1));
        assert.deepEqual(parseIpv6(text), buf);
      }),
      { numRuns: 500 },
    );
    assert.equal(parseIpv6('1::2::3'), undefined);
    assert.equal(parseIpv6('1:2:3:4:5:6:7:8:9'), undefined);
    assert.equal(parseIpv4('1.2.3.256'), undefined);
    assert.deepEqual(parseIpv6('fe80::1%eth0'), parseIpv6('fe80::1'));
  });
});
