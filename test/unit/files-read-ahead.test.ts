// Read-ahead on open (files/read-ahead.ts) between a real OpenSSH sftp-server and requests shaped
// as sshfs sends them: the answers are the server's own, READ at offset 0 of a file opened for
// reading never crosses "the network" (the channel between the two sides), and nothing kept is
// used once anything could have changed the file. Also: the host's side drops what a hostile
// person's side sends, and without the host's hello the person's side only passes bytes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { hostReadAhead, personReadAhead, READ_AHEAD_HELLO, readAheadVersion } from '../../src/files/read-ahead.js';
import { SFTP_SERVER } from '../../src/files/exports.js';
import { scratchPaths } from './helpers/scratch.js';

const work = scratchPaths('ebp-read-ahead-')();
mkdirSync(work);

const FXP = { init: 1, open: 3, close: 4, read: 5, write: 6, status: 101, handle: 102, data: 103 } as const;
const READ = 0x01;
const WRITE = 0x02;
const TRUNC = 0x10;

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}
function u64(value: number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(value));
  return buffer;
}
function str(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([u32(bytes.length), bytes]);
}
function sftpPacket(type: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), ...parts]);
  return Buffer.concat([u32(body.length), body]);
}

interface Reply { type: number; id: number; body: Buffer }

/** sshfs's end: writes requests, reads replies by id. */
class Sshfs {
  #buffer = Buffer.alloc(0);
  #waiting = new Map<number, (reply: Reply) => void>();
  #nextId = 1;

  constructor(private readonly out: PassThrough, from: PassThrough) {
    from.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      while (this.#buffer.length >= 4 && this.#buffer.length >= 4 + this.#buffer.readUInt32BE(0)) {
        const length = this.#buffer.readUInt32BE(0);
        const body = this.#buffer.subarray(4, 4 + length);
        this.#buffer = this.#buffer.subarray(4 + length);
        const type = body[0] ?? 0;
        const id = type === 2 ? 0 : body.readUInt32BE(1);
        this.#waiting.get(id)?.({ type, id, body: body.subarray(5) });
        this.#waiting.delete(id);
      }
    });
  }

  async request(type: number, ...parts: Buffer[]): Promise<Reply> {
    const id = type === FXP.init ? 0 : this.#nextId++;
    const reply = new Promise<Reply>((resolve) => this.#waiting.set(id, resolve));
    this.out.write(type === FXP.init ? sftpPacket(type, u32(3)) : sftpPacket(type, u32(id), ...parts));
    return reply;
  }

  async open(path: string, flags: number): Promise<Buffer> {
    const reply = await this.request(FXP.open, str(path), u32(flags), u32(0));
    assert.equal(reply.type, FXP.handle, `open ${path}`);
    return reply.body.subarray(4, 4 + reply.body.readUInt32BE(0));
  }

  async read(handle: Buffer, offset: number, length: number): Promise<string> {
    const reply = await this.request(FXP.read, str(handle), u64(offset), u32(length));
    if (reply.type === FXP.status) return `status ${reply.body.readUInt32BE(0)}`;
    assert.equal(reply.type, FXP.data);
    return reply.body.subarray(4, 4 + reply.body.readUInt32BE(0)).toString();
  }
}

interface Pair {
  sshfs: Sshfs;
  /** The types of the packets that crossed from the host's side to the person's. */
  crossed: number[];
  server: ChildProcess;
}

/** The four ends of the host's side, as streams the test writes to and reads from. */
function hostEnds(): { fromSshfs: PassThrough; toSshfs: PassThrough; fromPerson: PassThrough; toPerson: PassThrough } {
  return { fromSshfs: new PassThrough(), toSshfs: new PassThrough(), fromPerson: new PassThrough(), toPerson: new PassThrough() };
}

/** sshfs → host side → "network" → person side → sftp-server, and back. */
function pair(options: { hello: boolean; version?: 1 | 2; now?: () => number }): Pair {
  const server = spawn(SFTP_SERVER, ['-d', work], { stdio: ['pipe', 'pipe', 'inherit'] });
  const host = hostEnds();
  hostReadAhead(host, options.now === undefined ? {} : { now: options.now });
  const crossed: number[] = [];
  host.toPerson.on('data', (chunk: Buffer) => {
    // Requests are whole and small here: one per write.
    crossed.push(chunk[4] ?? 0);
  });
  const person = personReadAhead({ fromHost: host.toPerson, toServer: server.stdin, fromServer: server.stdout, toHost: host.fromPerson });
  if (options.hello) person.enable(options.version ?? 2);
  return { sshfs: new Sshfs(host.fromSshfs, host.toSshfs), crossed, server };
}

function fresh(name: string, text: string): string {
  writeFileSync(join(work, name), text);
  return name;
}

for (const version of [1, 2] as const) {
  test(`version ${version}: a file opened for reading: its first read is answered without crossing, with the server's own bytes`, async () => {
    const { sshfs, crossed, server } = pair({ hello: true, version });
    try {
      await sshfs.request(FXP.init);
      for (const [name, text] of [['small', 'hello, small file\n'], ['empty', ''], ['big', 'x'.repeat(100_000)]] as const) {
        fresh(name, text);
        crossed.length = 0;
        const handle = await sshfs.open(name, READ);
        const first = await sshfs.read(handle, 0, 65_536);
        if (name === 'empty') assert.equal(first, 'status 1', 'the end of an empty file');
        else assert.equal(first, text.slice(0, 65_536));
        if (name === 'big') {
          // 32 KiB read ahead do not answer 64 KiB: that read went to the person.
          assert.deepEqual(crossed, [FXP.open, FXP.read]);
        } else {
          assert.deepEqual(crossed, [FXP.open], `${name}: only the open crossed`);
        }
        // Used once: the same read again goes to the person and gets the same answer.
        assert.equal(await sshfs.read(handle, 0, 65_536), first);
        assert.equal(crossed.at(-1), FXP.read);
        await sshfs.request(FXP.close, str(handle));
      }
      // A read of less than was read ahead gets just that.
      fresh('part', 'abcdefghij');
      const handle = await sshfs.open('part', READ);
      assert.equal(await sshfs.read(handle, 0, 4), 'abcd');
    } finally {
      server.kill();
    }
  });

  test(`version ${version}: nothing kept is used once the file may have changed, or after a while`, async () => {
    let clock = 0;
    const { sshfs, crossed, server } = pair({ hello: true, version, now: () => clock });
    try {
      await sshfs.request(FXP.init);
      fresh('doc', 'old text');
      // Kept for handle A; then the file is written through handle B: A's read must see it.
      const a = await sshfs.open('doc', READ);
      const b = await sshfs.open('doc', WRITE | TRUNC);
      const written = await sshfs.request(FXP.write, str(b), u64(0), str('new text'));
      assert.equal(written.type, FXP.status);
      assert.equal(await sshfs.read(a, 0, 4096), 'new text');
      assert.equal(crossed.at(-1), FXP.read, 'asked the person');

      // Another read-only open, then time passes beyond freshness.
      const c = await sshfs.open('doc', READ);
      clock += 5000;
      crossed.length = 0;
      assert.equal(await sshfs.read(c, 0, 4096), 'new text');
      assert.deepEqual(crossed, [FXP.read]);

      // Not at offset 0: asked.
      const d = await sshfs.open('doc', READ);
      crossed.length = 0;
      assert.equal(await sshfs.read(d, 4, 4096), 'text');
      assert.deepEqual(crossed, [FXP.read]);
    } finally {
      server.kill();
    }
  });

}

test('the hello: this host offers both versions, an older person\'s side finds the first, this one takes the highest', () => {
  assert.ok(READ_AHEAD_HELLO.startsWith('ebp-files: read-ahead 1\n'), 'the line an older person\'s side looks for');
  assert.equal(readAheadVersion(READ_AHEAD_HELLO), 2);
  assert.equal(readAheadVersion('ebp-files: read-ahead 1\n'), 1, 'an older host');
  assert.equal(readAheadVersion('ebp-files: read-ahead 7\n'), 2, 'a newer host: the newest known here');
  assert.equal(readAheadVersion('ebp-files: read-ahead 2'), undefined, 'a line not yet whole');
  assert.equal(readAheadVersion('something else\n'), undefined);
});

test('without the host\'s hello the person\'s side reads nothing ahead', async () => {
  const { sshfs, crossed, server } = pair({ hello: false });
  try {
    await sshfs.request(FXP.init);
    fresh('plain', 'plain');
    const handle = await sshfs.open('plain', READ);
    assert.equal(await sshfs.read(handle, 0, 4096), 'plain');
    assert.deepEqual(crossed, [FXP.init, FXP.open, FXP.read]);
  } finally {
    server.kill();
  }
});

test('the host\'s side keeps nothing malformed from the person, and passes nothing of it to sshfs', async () => {
  const host = hostEnds();
  hostReadAhead(host);
  const toSshfs: Buffer[] = [];
  host.toSshfs.on('data', (chunk: Buffer) => toSshfs.push(chunk));
  const own = (handle: Buffer, answer: Buffer): Buffer => sftpPacket(250, str(handle), answer);
  const data = (text: string): Buffer => Buffer.concat([Buffer.from([FXP.data]), u32(0), str(text)]);
  host.fromPerson.write(own(Buffer.alloc(300, 1), data('too long a handle')));
  host.fromPerson.write(own(Buffer.from('h'), Buffer.concat([Buffer.from([FXP.handle]), u32(0), str('not an answer')])));
  host.fromPerson.write(own(Buffer.from('h2'), data('x'.repeat(40_000))));
  host.fromPerson.write(sftpPacket(250, u32(99)));
  // A real reply still passes, whole.
  const status = sftpPacket(FXP.status, u32(7), u32(0), str(''), str(''));
  host.fromPerson.write(status);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(Buffer.concat(toSshfs), status);

  // None of those answers a read: each READ goes on to the person.
  const toPerson: Buffer[] = [];
  host.toPerson.on('data', (chunk: Buffer) => toPerson.push(chunk));
  for (const handle of ['h', 'h2']) host.fromSshfs.write(sftpPacket(FXP.read, u32(1), str(handle), u64(0), u32(4096)));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(toPerson.length, 2);

  // A length no SFTP packet has: from there on, bytes pass as they are.
  const junk = Buffer.concat([u32(0x7fffffff), Buffer.from('junk')]);
  host.fromPerson.write(junk);
  host.fromPerson.write(Buffer.from('more'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(Buffer.concat(toSshfs), Buffer.concat([status, junk, Buffer.from('more')]));
});

test('version 2, hostile or lost: an answer nobody announced is dropped, a flood of announcements stays bounded, and a READ waits at most a second', async () => {
  const host = hostEnds();
  hostReadAhead(host);
  const toPerson: Buffer[] = [];
  const toSshfs: Buffer[] = [];
  host.toPerson.on('data', (chunk: Buffer) => toPerson.push(chunk));
  host.toSshfs.on('data', (chunk: Buffer) => toSshfs.push(chunk));
  const data = (text: string): Buffer => Buffer.concat([Buffer.from([FXP.data]), u32(0), str(text)]);
  const read = (handle: string, id: number): Buffer => sftpPacket(FXP.read, u32(id), str(handle), u64(0), u32(4096));
  const settle = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)); };

  // An answer without its announcement answers nothing.
  host.fromPerson.write(sftpPacket(252, str('u'), data('unasked')));
  host.fromSshfs.write(read('u', 1));
  await settle();
  assert.equal(toPerson.length, 1, 'the READ went to the person');

  // 300 announcements: the oldest are forgotten, their READs not held.
  for (let index = 0; index < 300; index += 1) host.fromPerson.write(sftpPacket(251, str(`f${index}`)));
  host.fromSshfs.write(read('f0', 2));
  await settle();
  assert.equal(toPerson.length, 2, 'a forgotten announcement holds nothing');

  // Announced, answer lost: the READ is held, then goes to the person within a second.
  host.fromPerson.write(sftpPacket(251, str('lost')));
  host.fromSshfs.write(read('lost', 3));
  await settle();
  assert.equal(toPerson.length, 2, 'held while the answer is on its way');
  await new Promise((resolve) => setTimeout(resolve, 1200));
  assert.equal(toPerson.length, 3, 'released after a second');

  // Announced and answered: the held READ is answered here, with the person's bytes.
  host.fromPerson.write(sftpPacket(251, str('ok')));
  host.fromSshfs.write(read('ok', 4));
  await settle();
  host.fromPerson.write(sftpPacket(252, str('ok'), data('the answer')));
  await settle();
  assert.equal(toPerson.length, 3, 'nothing crossed');
  const answered = Buffer.concat(toSshfs);
  assert.ok(answered.includes(Buffer.from('the answer')), 'sshfs got the answer');
  assert.equal(answered.readUInt32BE(5), 4, 'under the READ\'s own id');
  // None of ebp's own packets reached sshfs.
  assert.ok(!answered.includes(Buffer.from('unasked')));
});

test('cut anywhere, the streams pass every byte of every packet unchanged (bulk data is not gathered)', async () => {
  // A deterministic mix: INIT/VERSION, small requests and replies, 128 KiB writes and data.
  let seed = 7;
  const random = (below: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % below;
  };
  const packets: Buffer[] = [sftpPacket(FXP.init, u32(3)), sftpPacket(2, u32(3))];
  for (let index = 0; index < 60; index += 1) {
    const id = u32(index + 1);
    switch (random(4)) {
      case 0: packets.push(sftpPacket(FXP.write, id, str(Buffer.from('h')), u64(index), str(Buffer.alloc(random(3) === 0 ? 131_072 : 10, index)))); break;
      case 1: packets.push(sftpPacket(FXP.data, id, str(Buffer.alloc(random(2) === 0 ? 131_072 : 3, index)))); break;
      case 2: packets.push(sftpPacket(FXP.status, id, u32(0), str('ok'), str(''))); break;
      default: packets.push(sftpPacket(17, id, str('path'))); break;
    }
  }
  const input = Buffer.concat(packets);
  const host = hostEnds();
  hostReadAhead(host);
  const person = { fromHost: new PassThrough(), toServer: new PassThrough(), fromServer: new PassThrough(), toHost: new PassThrough() };
  personReadAhead(person);
  const directions = [[host.fromPerson, host.toSshfs], [host.fromSshfs, host.toPerson], [person.fromHost, person.toServer], [person.fromServer, person.toHost]] as const;
  for (const [into, from] of directions) {
    const out: Buffer[] = [];
    from.on('data', (chunk: Buffer) => out.push(chunk));
    for (let offset = 0; offset < input.length;) {
      const size = 1 + random(random(2) === 0 ? 16 : 70_000);
      into.write(input.subarray(offset, offset + size));
      offset += size;
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(Buffer.concat(out).equals(input), 'the same bytes came out');
    assert.ok(out.every((chunk) => chunk.length <= 70_000), 'no 128 KiB packet was gathered into one piece');
  }
});

test('an answer given here waits for the end of the packet passing to sshfs', async () => {
  const host = hostEnds();
  hostReadAhead(host);
  const toSshfs: Buffer[] = [];
  host.toSshfs.on('data', (chunk: Buffer) => toSshfs.push(chunk));
  const kept = sftpPacket(250, str('h'), Buffer.concat([Buffer.from([FXP.data]), u32(0), str('kept')]));
  const big = sftpPacket(FXP.data, u32(9), str(Buffer.alloc(131_072, 1)));
  host.fromPerson.write(Buffer.concat([kept, big.subarray(0, 70_000)]));
  await new Promise((resolve) => setImmediate(resolve));
  host.fromSshfs.write(sftpPacket(FXP.read, u32(5), str('h'), u64(0), u32(4096)));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(Buffer.concat(toSshfs), big.subarray(0, 70_000), 'nothing inside the big packet');
  host.fromPerson.write(big.subarray(70_000));
  await new Promise((resolve) => setImmediate(resolve));
  const answer = sftpPacket(FXP.data, u32(5), str('kept'));
  assert.ok(Buffer.concat(toSshfs).equals(Buffer.concat([big, answer])), 'the big packet whole, then the answer');
});
