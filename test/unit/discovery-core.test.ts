// The protocol engine over an in-memory LAN (no sockets): probing and conflict renaming,
// announcing, answering (multicast, QU unicast, legacy unicast, known-answer suppression,
// defending a probed name), goodbyes, TXT updates.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import type { DiscoveredPeer } from '../../src/discovery/cache.js';
import { DiscoveryCore, type Destination } from '../../src/discovery/core.js';
import { SERVICE_NAME } from '../../src/discovery/names.js';
import type { PeerTxt } from '../../src/discovery/txt.js';
import { CLASS_IN, decodeMessage, encodeMessage, FLAG_RESPONSE, type Message, type ResourceRecord, TYPE } from '../../src/discovery/wire.js';

const txt = (n: number, apps = 1): PeerTxt => ({ v: '1', id: `SHA256:${String(n).repeat(43).slice(0, 43)}`, apps, cat: 'ab', load: '0/4' });

interface Sent {
  readonly from: string;
  readonly packet: Buffer;
  readonly to: Destination | undefined;
}

/** A one-link LAN: every multicast reaches every node (itself included), unicast its target. */
class Lan {
  readonly nodes = new Map<string, DiscoveryCore>();
  readonly sent: Sent[] = [];
  /** Packets delivered to outside listeners (tests acting as other hosts). */
  readonly listeners: ((sent: Sent) => void)[] = [];

  add(address: string, name: string, options: { ttlSeconds?: number; txt?: PeerTxt; hostname?: string } = {}): { core: DiscoveryCore; events: [string, DiscoveredPeer | string][] } {
    const events: [string, DiscoveredPeer | string][] = [];
    const core = new DiscoveryCore(
      { name, port: 2222, txt: options.txt ?? txt(1), announce: true, browse: true, ttlSeconds: options.ttlSeconds ?? 75, hostname: options.hostname ?? address },
      { send: (_link, packet, to) => { this.deliver({ from: address, packet, to }); } },
      { peer: (kind, peer) => events.push([kind, peer]), renamed: (newName) => events.push(['renamed', newName]) },
    );
    core.setLinks([{ name: 'eth0', v4: [{ address, prefix: 24 }], v6: [{ address: `fe80::${address.split('.').pop() ?? '1'}`, prefix: 64 }] }]);
    this.nodes.set(address, core);
    return { core, events };
  }

  deliver(sent: Sent): void {
    this.sent.push(sent);
    setImmediate(() => {
      for (const listener of this.listeners) listener(sent);
      for (const [address, core] of this.nodes) {
        if (sent.to !== undefined && sent.to.address !== address) continue;
        core.receive('eth0', sent.packet, { address: sent.from, port: 5353 });
      }
    });
  }

  /** Sends a packet as an outside host. */
  inject(message: Message, source: Destination): void {
    const packet = encodeMessage(message);
    for (const core of this.nodes.values()) core.receive('eth0', packet, source);
  }

  closeAll(): void {
    for (const core of this.nodes.values()) core.close();
  }
}

const lans: Lan[] = [];
function lan(): Lan {
  const made = new Lan();
  lans.push(made);
  return made;
}
after(() => {
  for (const made of lans) made.closeAll();
});

const ptrQuestion = (qu: boolean): Message => ({
  id: 77,
  flags: 0,
  questions: [{ name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, qu }],
  answers: [],
  authorities: [],
  additionals: [],
});

describe('discovery core', () => {
  it('two nodes probe, announce and find each other', async () => {
    const net = lan();
    const a = net.add('198.18.5.1', 'Alpha');
    const b = net.add('198.18.5.2', 'Beta');
    await Promise.all([a.core.start(), b.core.start()]);
    assert.equal(a.core.instanceName, 'Alpha');
    await delay(300);
    assert.deepEqual(a.core.peers().map((p) => p.instance), ['Beta']);
    const beta = a.core.peers()[0];
    assert.ok(beta !== undefined);
    assert.equal(beta.verified, true);
    assert.deepEqual(beta.addresses, ['198.18.5.2', 'fe80::2%eth0']);
    assert.equal(beta.key, 'beta@eth0');
    assert.equal(beta.port, 2222);
    assert.deepEqual(b.core.peers().map((p) => p.instance), ['Alpha']);
    // Probes went out before any announcement (3 of them, 250 ms apart).
    const first = net.sent
      .filter((s) => s.from === '198.18.5.1')
      .map((s) => decodeMessage(s.packet))
      .filter((m) => (m.flags & FLAG_RESPONSE) !== 0 || m.authorities.length > 0)
      .slice(0, 4);
    assert.deepEqual(first.map((m) => (m.flags & FLAG_RESPONSE) !== 0), [false, false, false, true]);
    assert.ok(first[0]?.authorities.some((r) => r.type === TYPE.SRV));
  });

  it('renames on a clash: one keeps the name, the other becomes "name (2)"', async () => {
    const net = lan();
    const a = net.add('198.18.6.1', 'Twin', { hostname: 'same' });
    const b = net.add('198.18.6.2', 'Twin', { hostname: 'same', txt: txt(2) });
    await Promise.all([a.core.start(), b.core.start()]);
    await delay(2500);
    const names = [a.core.instanceName, b.core.instanceName].sort();
    assert.deepEqual(names, ['Twin', 'Twin (2)']);
    assert.notEqual(a.core.hostLabel, b.core.hostLabel);
    const renamed = [...a.events, ...b.events].filter(([kind]) => kind === 'renamed');
    assert.deepEqual(renamed, [['renamed', 'Twin (2)']]);
    assert.deepEqual(a.core.peers().map((p) => p.instance), [b.core.instanceName]);
  });

  it('a later node whose name is taken is defended against and renames', async () => {
    const net = lan();
    const a = net.add('198.18.7.1', 'Taken');
    await a.core.start();
    const b = net.add('198.18.7.2', 'Taken', { txt: txt(2) });
    await b.core.start();
    assert.equal(a.core.instanceName, 'Taken');
    assert.equal(b.core.instanceName, 'Taken (2)');
  });

  it('answers multicast, QU with unicast when recently multicast, legacy queries with unicast', async () => {
    const net = lan();
    const a = net.add('198.18.8.1', 'Answerer');
    await a.core.start();
    await delay(50);
    const sent = (): Sent[] => net.sent.slice(before).filter((s) => (decodeMessage(s.packet).flags & FLAG_RESPONSE) !== 0);
    const started = Date.now();
    let before = net.sent.length;
    net.inject(ptrQuestion(true), { address: '198.18.8.9', port: 5353 });
    await delay(10);
    const unicast = sent().find((s) => s.to !== undefined);
    assert.deepEqual(unicast?.to, { address: '198.18.8.9', port: 5353 });
    const reply = decodeMessage(unicast.packet);
    assert.equal(reply.answers[0]?.type, TYPE.PTR);
    assert.ok(reply.additionals.some((r) => r.type === TYPE.SRV) && reply.additionals.some((r) => r.type === TYPE.A));

    before = net.sent.length;
    net.inject(ptrQuestion(false), { address: '198.18.8.9', port: 5353 });
    await delay(200);
    // Within a second of the announcement: not multicast again (RFC 6762 §6 rate limit).
    assert.equal(sent().length, 0);
    // Announcements went out at 0 and 1 s (the next at 3 s): ask between 2.1 and 3 s.
    await delay(2100 - (Date.now() - started));
    before = net.sent.length;
    net.inject(ptrQuestion(false), { address: '198.18.8.9', port: 5353 });
    await delay(200);
    assert.equal(sent().length, 1);
    assert.equal(sent()[0]?.to, undefined);

    before = net.sent.length;
    net.inject(ptrQuestion(false), { address: '198.18.8.9', port: 40000 });
    await delay(10);
    const legacy = sent().find((s) => s.to !== undefined);
    assert.deepEqual(legacy?.to, { address: '198.18.8.9', port: 40000 });
    const legacyReply = decodeMessage(legacy.packet);
    assert.equal(legacyReply.id, 77);
    assert.equal(legacyReply.questions.length, 1);
    assert.ok(legacyReply.answers.every((r) => r.ttl <= 10 && !r.flush));
  });

  it('suppresses answers the querier already knows', async () => {
    const net = lan();
    const a = net.add('198.18.9.1', 'Known');
    await a.core.start();
    await delay(2100);
    const known: ResourceRecord = { name: SERVICE_NAME, type: TYPE.PTR, cls: CLASS_IN, flush: false, ttl: 70, data: { kind: 'PTR', target: ['Known', ...SERVICE_NAME] } };
    const before = net.sent.length;
    const responses = (): number => net.sent.slice(before).filter((s) => (decodeMessage(s.packet).flags & FLAG_RESPONSE) !== 0).length;
    net.inject({ ...ptrQuestion(false), answers: [known] }, { address: '198.18.9.9', port: 5353 });
    await delay(200);
    assert.equal(responses(), 0);
    net.inject({ ...ptrQuestion(false), answers: [{ ...known, ttl: 10 }] }, { address: '198.18.9.9', port: 5353 });
    await delay(200);
    assert.equal(responses(), 1);
  });

  it('defends its name against a late prober at once', async () => {
    const net = lan();
    const a = net.add('198.18.10.1', 'Mine');
    await a.core.start();
    const before = net.sent.length;
    const srv: ResourceRecord = {
      name: ['Mine', ...SERVICE_NAME],
      type: TYPE.SRV,
      cls: CLASS_IN,
      flush: false,
      ttl: 120,
      data: { kind: 'SRV', priority: 0, weight: 0, port: 1, target: ['other', 'local'] },
    };
    net.inject({ id: 0, flags: 0, questions: [{ name: ['Mine', ...SERVICE_NAME], type: TYPE.ANY, cls: CLASS_IN, qu: false }], answers: [], authorities: [srv], additionals: [] }, { address: '198.18.10.9', port: 5353 });
    await delay(20);
    const defence = net.sent.slice(before).map((s) => decodeMessage(s.packet));
    assert.equal(defence.length, 1);
    assert.ok(defence[0]?.answers.some((r) => r.type === TYPE.SRV && r.data.kind === 'SRV' && r.data.port === 2222));
  });

  it('goodbyes remove a peer from others within a second; TXT updates reach them', async () => {
    const net = lan();
    const a = net.add('198.18.11.1', 'Stays');
    const b = net.add('198.18.11.2', 'Leaves', { txt: txt(2) });
    await Promise.all([a.core.start(), b.core.start()]);
    await delay(200);
    const sentBefore = net.sent.length;
    b.core.updateTxt(txt(2));
    await delay(50);
    assert.equal(net.sent.filter((s, i) => i >= sentBefore && s.from === '198.18.11.2' && (decodeMessage(s.packet).flags & FLAG_RESPONSE) !== 0).length, 0, 'unchanged TXT re-announced');
    b.core.updateTxt(txt(2, 42));
    await delay(200);
    const updated = a.events.filter(([kind]) => kind === 'updated').map(([, peer]) => peer as DiscoveredPeer);
    assert.equal(updated.at(-1)?.txt.apps, 42);
    const closedAt = Date.now();
    b.core.close();
    await delay(1000);
    const removed = a.events.find(([kind]) => kind === 'removed');
    assert.ok(removed !== undefined, 'not removed within 1 s');
    assert.deepEqual(a.core.peers(), []);
    assert.ok(Date.now() - closedAt < 1100);
  });

  it('rename sends goodbyes for the old name and announces the new one', async () => {
    const net = lan();
    const a = net.add('198.18.12.1', 'Watcher');
    const b = net.add('198.18.12.2', 'Old', { txt: txt(2) });
    await Promise.all([a.core.start(), b.core.start()]);
    await delay(200);
    b.core.rename('New');
    await delay(1500);
    assert.equal(b.core.instanceName, 'New');
    assert.deepEqual(a.core.peers().map((p) => p.instance), ['New']);
    assert.ok(a.events.some(([kind, peer]) => kind === 'removed' && (peer as DiscoveredPeer).instance === 'Old'));
    assert.ok(b.events.some(([kind, name]) => kind === 'renamed' && name === 'New'));
  });
});
