// A pooled connection keeps a session channel open ahead and sends a launch's requests on it
// without waiting for each reply (src/transport/session-ahead.ts), against a real ssh2 server
// that records what arrives and when.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer, Socket, type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import ssh2, { type ClientChannel, type ServerChannel } from 'ssh2';
import { EbpError } from '../../src/lib/errors.js';
import { generateIdentity } from '../../src/peer/identity.js';
import { KnownHosts } from '../../src/peer/known-hosts.js';
import { connectPeer, type PeerConnection } from '../../src/transport/ssh-client.js';
import type { RemoteProcess } from '../../src/transport/remote-process.js';
import { execAhead, openSessionAhead, sessionsAheadWork } from '../../src/transport/session-ahead.js';

const { Server, utils } = ssh2;

interface Seen {
  /** What arrived, in order: 'open N', 'env N K=V', 'pty N', 'exec N CMD'. */
  readonly events: string[];
  /** When each event arrived (performance.now()). */
  readonly at: Map<string, number>;
  /** The `after-eof` sessions whose input ended (EOF from the client), by number. */
  readonly eofs: number[];
}

interface ServerPlan {
  readonly refusePty?: boolean;
  /** Close the first session channel this long after it opened, before any request. */
  readonly closeFirstAfterMs?: number;
  /** Refuse the first session channel. */
  readonly refuseFirst?: boolean;
}

/** One-way delay of the link between client and server (a forwarding proxy). */
const LATENCY_MS = 60;

/** A request sent without want-reply gets no accept/reject functions, whatever ssh2's types say. */
function reply(answer: (() => void) | undefined): void {
  answer?.();
}

async function startServer(plan: ServerPlan): Promise<{ port: number; seen: Seen; close: () => Promise<void> }> {
  const seen: Seen = { events: [], at: new Map(), eofs: [] };
  const record = (event: string): void => {
    seen.events.push(event);
    seen.at.set(event, performance.now());
  };
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  let sessions = 0;
  const server = new Server({ hostKeys: [hostKey] }, (connection) => {
    connection.on('authentication', (context) => { context.accept(); });
    connection.on('error', () => undefined);
    connection.on('ready', () => {
      connection.on('session', (accept, reject) => {
        sessions += 1;
        const id = sessions;
        if (id === 1 && plan.refuseFirst === true) {
          record(`refused ${id}`);
          reject();
          return;
        }
        const session = accept();
        record(`open ${id}`);
        if (id === 1 && plan.closeFirstAfterMs !== undefined) {
          // ssh2's server has no close for a session without a command: its protocol writer does.
          const outgoing = (session as unknown as { _chanInfo: { outgoing: { id: number } } })._chanInfo.outgoing.id;
          setTimeout(() => { (connection as unknown as { _protocol: { channelClose(id: number): void } })._protocol.channelClose(outgoing); }, plan.closeFirstAfterMs);
        }
        session.on('env', (acceptEnv, _reject, info) => {
          record(`env ${id} ${info.key}=${info.val}`);
          reply(acceptEnv);
        });
        // Replies go out as each request arrives, in order (RFC 4254 5.4), as ebp's server does.
        session.on('pty', (acceptPty, rejectPty) => {
          record(`pty ${id}`);
          reply(plan.refusePty === true ? rejectPty : acceptPty);
        });
        session.on('exec', (acceptExec, _reject, info) => {
          record(`exec ${id} ${info.command}`);
          const channel: ServerChannel = acceptExec();
          const finish = (): void => {
            channel.write(`ran ${info.command}\n`);
            channel.exit(3);
            channel.end();
          };
          if (info.command !== 'after-eof') {
            finish();
            return;
          }
          // This one runs until its input ends, as `cat` would.
          channel.on('end', () => {
            seen.eofs.push(id);
            finish();
          });
          channel.resume();
        });
      });
    });
  });
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  const { port } = server.address() as AddressInfo;
  // A link with latency: every chunk, both ways, is forwarded LATENCY_MS later, in order.
  const links: Socket[] = [];
  const proxy = createServer((near) => {
    const far = netConnect(port, '127.0.0.1');
    links.push(near, far);
    const forward = (from: Socket, to: Socket): void => {
      from.on('data', (chunk: Buffer) => { setTimeout(() => { if (!to.destroyed) to.write(chunk); }, LATENCY_MS); });
      from.on('end', () => { setTimeout(() => { to.end(); }, LATENCY_MS); });
      from.on('error', () => { to.destroy(); });
    };
    forward(near, far);
    forward(far, near);
  });
  await new Promise<void>((resolve) => { proxy.listen(0, '127.0.0.1', resolve); });
  const proxyPort = (proxy.address() as AddressInfo).port;
  return {
    port: proxyPort,
    seen,
    close: async () => {
      for (const link of links) link.destroy();
      await new Promise<void>((resolve) => { proxy.close(() => { resolve(); }); });
      await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
    },
  };
}

async function withConnection(plan: ServerPlan, sessionsAhead: boolean, body: (connection: PeerConnection, seen: Seen) => Promise<void>): Promise<void> {
  const server = await startServer(plan);
  const state = mkdtempSync(join(tmpdir(), 'ebp-ahead-'));
  let connection: PeerConnection | undefined;
  try {
    connection = await connectPeer({ host: '127.0.0.1', port: server.port }, {
      identity: generateIdentity(), knownHosts: await KnownHosts.open(state), username: 'test', sessionsAhead,
    });
    await body(connection, server.seen);
  } finally {
    connection?.close();
    await server.close();
    rmSync(state, { recursive: true, force: true });
  }
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Reads a launch's output, ends its input and waits for its end: its output and exit code. */
async function finished(remote: RemoteProcess): Promise<{ out: string; code: unknown }> {
  let out = '';
  remote.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  remote.stdin.end();
  const exit = await remote.exit;
  return { out, code: exit.kind === 'code' ? exit.code : exit.kind };
}

async function output(connection: PeerConnection, command: string, pty?: { term: string; cols: number; rows: number }): Promise<{ out: string; code: unknown }> {
  return finished(await connection.exec(command, { env: { LANG: 'C.UTF-8' }, ...(pty === undefined ? {} : { pty }) }));
}

const PTY = { term: 'xterm', cols: 100, rows: 30 };

test('a pooled connection launches on a session opened ahead, its requests sent without waiting', { timeout: 30_000 }, async () => {
  await withConnection({}, true, async (connection, seen) => {
    await until('the session opened ahead', () => seen.events.includes('open 1'));
    await new Promise((resolve) => setTimeout(resolve, 3 * LATENCY_MS));
    assert.deepEqual(seen.events, ['open 1'], 'one idle session, no request on it yet');
    const began = performance.now();
    const result = await output(connection, 'first', PTY);
    const took = performance.now() - began;
    assert.deepEqual(result, { out: 'ran first\n', code: 3 });
    assert.deepEqual(seen.events, ['open 1', 'env 1 LANG=C.UTF-8', 'pty 1', 'exec 1 first']);
    // exec left with pty: it came in together with it, not a round trip (2 x LATENCY_MS) later.
    const gap = (seen.at.get('exec 1 first') ?? 0) - (seen.at.get('pty 1') ?? 0);
    assert.ok(gap < LATENCY_MS / 2, `exec came ${gap.toFixed(1)} ms after pty`);
    // Requests there, replies, output and status back: one round trip, not three.
    assert.ok(took < 4 * LATENCY_MS, `the launch took ${took.toFixed(0)} ms`);
    // The next one is opened as the launch's channel closes, and serves the next launch.
    await until('the next session opened ahead', () => seen.events.includes('open 2'));
    const second = await output(connection, 'second');
    assert.deepEqual(second, { out: 'ran second\n', code: 3 });
    assert.deepEqual(seen.events.slice(4), ['open 2', 'env 2 LANG=C.UTF-8', 'exec 2 second']);
  });
});

test('on a session already open ahead, the requests are written in the call that asks for the launch', { timeout: 30_000 }, async () => {
  await withConnection({}, true, async (connection, seen) => {
    await until('the session opened ahead', () => seen.events.includes('open 1'));
    // Its confirmation has come back through the delayed link.
    await new Promise((resolve) => setTimeout(resolve, 3 * LATENCY_MS));
    // The caller (daemon B) goes on with other work right after asking: what is not written
    // before exec() returns waits for that work.
    const writes = mock.method(Socket.prototype, 'write');
    let launched: ReturnType<PeerConnection['exec']>;
    try {
      launched = connection.exec('now', { env: { LANG: 'C.UTF-8' } });
    } finally {
      writes.mock.restore();
    }
    const written = writes.mock.callCount();
    assert.ok(written > 0, 'nothing was written before exec() returned');
    assert.deepEqual(await finished(await launched), { out: 'ran now\n', code: 3 });
    assert.deepEqual(seen.events.slice(0, 3), ['open 1', 'env 1 LANG=C.UTF-8', 'exec 1 now']);
  });
});

test('without sessions ahead (a one-shot connection), each request waits for the reply before it', { timeout: 30_000 }, async () => {
  await withConnection({}, false, async (connection, seen) => {
    await new Promise((resolve) => setTimeout(resolve, 3 * LATENCY_MS));
    assert.deepEqual(seen.events, [], 'nothing is opened before a launch');
    const result = await output(connection, 'only', PTY);
    assert.deepEqual(result, { out: 'ran only\n', code: 3 });
    assert.deepEqual(seen.events, ['open 1', 'env 1 LANG=C.UTF-8', 'pty 1', 'exec 1 only']);
    const gap = (seen.at.get('exec 1 only') ?? 0) - (seen.at.get('pty 1') ?? 0);
    assert.ok(gap >= 2 * LATENCY_MS - 5, `exec came ${gap.toFixed(1)} ms after pty`);
  });
});

test('a refused terminal fails that launch only; the next one runs', { timeout: 30_000 }, async () => {
  await withConnection({ refusePty: true }, true, async (connection, seen) => {
    await until('the session opened ahead', () => seen.events.includes('open 1'));
    await assert.rejects(output(connection, 'refused', PTY), (error: unknown) => error instanceof EbpError && error.code === 'SESSION_BROKEN' && /pseudo-terminal/.test(error.message));
    const next = await output(connection, 'plain');
    assert.deepEqual(next, { out: 'ran plain\n', code: 3 });
  });
});

test('a session the peer closed while it waited is not used', { timeout: 30_000 }, async () => {
  await withConnection({ closeFirstAfterMs: 10 }, true, async (connection, seen) => {
    await until('the session opened ahead', () => seen.events.includes('open 1'));
    await new Promise((resolve) => setTimeout(resolve, 4 * LATENCY_MS));
    const result = await output(connection, 'after');
    assert.deepEqual(result, { out: 'ran after\n', code: 3 });
    assert.ok(seen.events.includes('exec 2 after'), seen.events.join(', '));
  });
});

test('a peer that refuses the session opened ahead: the launch opens its own', { timeout: 30_000 }, async () => {
  await withConnection({ refuseFirst: true }, true, async (connection, seen) => {
    await until('the refusal', () => seen.events.includes('refused 1'));
    const result = await output(connection, 'own');
    assert.deepEqual(result, { out: 'ran own\n', code: 3 });
    assert.deepEqual(seen.events.slice(0, 3), ['refused 1', 'open 2', 'env 2 LANG=C.UTF-8']);
  });
});

test('launches started together each get a channel of their own', { timeout: 30_000 }, async () => {
  await withConnection({}, true, async (connection, seen) => {
    await until('the session opened ahead', () => seen.events.includes('open 1'));
    const results = await Promise.all(['a', 'b', 'c'].map(async (name) => output(connection, name)));
    assert.deepEqual(results, ['a', 'b', 'c'].map((name) => ({ out: `ran ${name}\n`, code: 3 })));
    const execs = seen.events.filter((event) => event.startsWith('exec '));
    assert.equal(new Set(execs.map((event) => event.split(' ')[1])).size, 3, `one session each: ${execs.join(', ')}`);
  });
});

test('an ssh2 without the internals used here: nothing is opened ahead, nothing sent, ssh2\'s exec is the way', { timeout: 30_000 }, async () => {
  const stranger = new ssh2.Client();
  for (const field of ['_chanMgr', '_protocol']) Object.defineProperty(stranger, field, { value: undefined });
  assert.equal(sessionsAheadWork(stranger), false);
  assert.equal(await openSessionAhead(stranger), undefined);
  const channel = { _callbacks: [], outgoing: { id: 0, state: 'open' }, close: () => undefined } as unknown as ClientChannel;
  assert.equal(execAhead(stranger, channel, { command: 'x', env: {} }, () => { throw new Error('must not be called'); }), false);
  // A connected client, but a channel object of another shape: refused as well.
  const server = await startServer({});
  const real = new ssh2.Client();
  try {
    await new Promise<void>((resolve, reject) => {
      real.once('ready', resolve).once('error', reject).connect({ host: '127.0.0.1', port: server.port, username: 'test', privateKey: generateIdentity().privateKey });
    });
    assert.equal(sessionsAheadWork(real), true, 'positive control: this ssh2 has them');
    assert.equal(execAhead(real, {} as unknown as ClientChannel, { command: 'x', env: {} }, () => { throw new Error('must not be called'); }), false);
  } finally {
    real.end();
    await server.close();
  }
});

test('a launch whose input is empty sends its EOF with its requests, all in one write', { timeout: 30_000 }, async () => {
  await withConnection({}, true, async (connection, seen) => {
    await until('the session opened ahead', () => seen.events.includes('open 1'));
    await new Promise((resolve) => setTimeout(resolve, 3 * LATENCY_MS));
    // Node hands a corked socket's messages to _writev together, one at a time to _write.
    // (Stream internals, absent from the types.)
    const internals = Socket.prototype as unknown as { _writev(...args: unknown[]): void; _write(...args: unknown[]): void };
    const writev = mock.method(internals, '_writev');
    const write = mock.method(internals, '_write');
    let launched: ReturnType<PeerConnection['exec']>;
    try {
      launched = connection.exec('after-eof', { env: { LANG: 'C.UTF-8' }, inputEnded: true });
    } finally {
      writev.mock.restore();
      write.mock.restore();
    }
    assert.deepEqual([writev.mock.callCount(), write.mock.callCount()], [1, 0], 'the env, the exec and the EOF were not written together');
    const remote = await launched;
    // The input is not ended here before the app has seen its EOF: the one sent with the request.
    await until('the EOF at the server', () => seen.eofs.includes(1));
    assert.deepEqual(await finished(remote), { out: 'ran after-eof\n', code: 3 });
    assert.deepEqual(seen.events.slice(0, 3), ['open 1', 'env 1 LANG=C.UTF-8', 'exec 1 after-eof']);
  });
});
