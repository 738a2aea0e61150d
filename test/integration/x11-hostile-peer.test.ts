// The person's side of X11 forwarding against a hostile peer: an SSH server of the test's own
// (ssh2, in this process) accepts a real `connectPeer` launch with X11, then opens x11 channels
// that send garbage, a wrong cookie, an oversized or empty authorization, or nothing at all.
// Each must be closed without a byte from the person's display (a real Xvfb with a cookie). The
// one channel that presents the launch's fake cookie, even a byte at a time, gets the X server's
// welcome: the real (untrusted) cookie was put in its place. When the launch ends, it is closed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import ssh2, { type Connection, type ServerChannel } from 'ssh2';
import { prepareLocalDisplay } from '../../src/display/x11-local.js';
import { loadOrCreateIdentity } from '../../src/peer/identity.js';
import { KnownHosts } from '../../src/peer/known-hosts.js';
import { connectPeer, type PeerConnection } from '../../src/transport/ssh-client.js';
import { startXvfb, X11_MISSING, type Xvfb } from './helpers/xvfb.js';

const { Server, utils } = ssh2;
const SKIP = X11_MISSING.length > 0 ? `missing ${X11_MISSING.join(', ')}` : false;

let x: Xvfb;
let dir: string;
let server: InstanceType<typeof Server>;
let port: number;
let peerConnection: Connection | undefined;
let onExec: ((channel: ServerChannel, fakeCookie: Buffer) => void) | undefined;
let fakeCookie = Buffer.alloc(0);

function setup(name: string, data: Buffer, order: 'B' | 'l' = 'l'): Buffer {
  const pad = (n: number): number => (4 - (n % 4)) % 4;
  const header = Buffer.alloc(12);
  header[0] = order === 'B' ? 0x42 : 0x6c;
  const w = (v: number, o: number): number => (order === 'B' ? header.writeUInt16BE(v, o) : header.writeUInt16LE(v, o));
  w(11, 2);
  w(name.length, 6);
  w(data.length, 8);
  return Buffer.concat([header, Buffer.from(name), Buffer.alloc(pad(name.length)), data, Buffer.alloc(pad(data.length))]);
}

interface Outcome {
  readonly received: Buffer;
  readonly closed: boolean;
}

/** Opens an x11 channel to the person's side, sends `chunks`, and sees what comes back. */
async function attempt(chunks: readonly Buffer[], waitMs = 3000): Promise<Outcome & { channel: Duplex }> {
  const connection = peerConnection;
  if (connection === undefined) throw new Error('no peer connection');
  const channel = await new Promise<Duplex>((resolve, reject) => {
    connection.x11('127.0.0.1', 0, (error, opened) => {
      if (error instanceof Error) reject(error);
      else resolve(opened);
    });
  });
  let received = Buffer.alloc(0);
  let closed = false;
  channel.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  channel.on('error', () => undefined);
  const gone = new Promise<void>((resolve) => channel.once('close', () => {
    closed = true;
    resolve();
  }));
  for (const chunk of chunks) {
    channel.write(chunk);
    if (chunks.length > 1) await delay(5);
  }
  await Promise.race([gone, delay(waitMs)]);
  return { received, closed, channel };
}

before(async () => {
  if (SKIP !== false) return;
  x = await startXvfb();
  dir = mkdtempSync(join(tmpdir(), 'ebp-x11-hostile-'));
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  server = new Server({ hostKeys: [hostKey] }, (client) => {
    client.on('authentication', (ctx) => { ctx.accept(); });
    client.on('error', () => undefined);
    client.on('ready', () => {
      peerConnection = client;
      client.on('session', (accept) => {
        const session = accept();
        session.on('x11', (acceptX11, _reject, info) => {
          const cookie = info.cookie as unknown as Buffer | string;
          fakeCookie = Buffer.from(typeof cookie === 'string' ? cookie : cookie.toString('latin1'), 'hex');
          acceptX11();
        });
        session.on('exec', (acceptExec) => {
          onExec?.(acceptExec(), fakeCookie);
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
after(async () => {
  if (SKIP !== false) return;
  server.close();
  await x.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('hostile x11 channels are closed unanswered; only the launch\'s fake cookie reaches the display', { skip: SKIP, timeout: 90_000 }, async () => {
  const identity = await loadOrCreateIdentity(dir);
  const knownHosts = await KnownHosts.open(dir);
  const local = await prepareLocalDisplay({ display: x.display, trusted: false, env: { ...process.env, ...x.env } });
  assert.equal(local.trusted, false);
  assert.notEqual(local.authData, x.cookie, 'a new untrusted cookie, not the person\'s own');
  let connection: PeerConnection | undefined;
  let execChannel: ServerChannel | undefined;
  const execSeen = new Promise<void>((resolve) => {
    onExec = (channel) => {
      execChannel = channel;
      resolve();
    };
  });
  try {
    connection = await connectPeer({ host: '127.0.0.1', port }, { identity, knownHosts, username: 'person' });
    const remote = await connection.exec('app', { x11: local });
    remote.stdin.end();
    remote.stdout.resume();
    remote.stderr.resume();
    await execSeen;
    assert.equal(fakeCookie.length, 16, 'the peer got a 16-byte fake cookie');
    assert.notEqual(fakeCookie.toString('hex'), local.authData, 'never the real one');

    const hostile: [string, Buffer[]][] = [
      ['garbage', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]],
      ['a wrong cookie', [setup('MIT-MAGIC-COOKIE-1', randomBytes(16))]],
      ['the person\'s real cookie (must never be asked for, and is not the fake one)', [setup('MIT-MAGIC-COOKIE-1', Buffer.from(local.authData, 'hex'))]],
      ['a prefix of the fake cookie', [setup('MIT-MAGIC-COOKIE-1', fakeCookie.subarray(0, 8))]],
      ['another protocol with the fake data', [setup('XDM-AUTHORIZATION-1', fakeCookie)]],
      ['no authorization', [setup('', Buffer.alloc(0))]],
      ['an oversized authorization claim', [Buffer.from([0x6c, 0, 11, 0, 0, 0, 18, 0, 0xff, 0xff, 0, 0])]],
      ['not X11 version 11', [Buffer.from([0x42, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0])]],
    ];
    for (const [what, chunks] of hostile) {
      const outcome = await attempt(chunks);
      assert.equal(outcome.received.length, 0, `${what}: not one byte from the display`);
      assert.ok(outcome.closed, `${what}: the channel is closed`);
    }

    // The fake cookie, a byte at a time, in big-endian order: the X server welcomes it (1 = Success).
    const good = await attempt([...setup('MIT-MAGIC-COOKIE-1', fakeCookie, 'B')].map((byte) => Buffer.from([byte])));
    assert.equal(good.closed, false, 'the right cookie keeps its channel');
    assert.equal(good.received[0], 1, `the X server accepted the swapped-in cookie (reply ${good.received.subarray(0, 8).toString('hex')})`);

    // A channel that never sends its setup is dropped (after 10 s).
    const silent = await attempt([], 15_000);
    assert.ok(silent.closed, 'a silent channel is closed');
    assert.equal(silent.received.length, 0);

    // The launch ends: its X connections go with it.
    const goodClosed = new Promise<void>((resolve) => good.channel.once('close', resolve));
    execChannel?.exit(0);
    execChannel?.end();
    const exit = await remote.exit;
    assert.equal(exit.kind, 'code');
    await Promise.race([goodClosed, delay(5000).then(() => { throw new Error('the X connection outlived its launch'); })]);
  } finally {
    connection?.close();
  }
});
