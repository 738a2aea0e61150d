// Output through a real ssh2 server and client on loopback when the client reads slowly, so the
// server's writes keep finding the window exhausted: stdout and stderr interleaved in many
// sizes must arrive exactly, each in order, and the exit status after them (see
// transport/ssh2-window.ts for the faults in ssh2's flow control this guards against).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import ssh2, { type ServerChannel } from 'ssh2';
import { repairWindowHandling } from '../../src/transport/ssh2-window.js';

const { Client, Server, utils } = ssh2;

/** Deterministic bytes: chunk i of the stdout side is (i mod 251) repeated. */
function chunk(index: number, size: number): Buffer {
  return Buffer.alloc(size, index % 251);
}

/** Writes and resolves once the stream took it (its callback: the bytes went to the protocol). */
function write(stream: NodeJS.WritableStream, data: Buffer): Promise<void> {
  return new Promise((resolve) => { stream.write(data, () => { resolve(); }); });
}

interface Plan {
  readonly stdout: Buffer[];
  readonly stderr: Buffer[];
}

function makePlan(): Plan {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const sizes = [3 * 1024 * 1024, 1, 65_536, 700_000, 32_768, 2 * 1024 * 1024 + 7, 10, 1_500_000];
  sizes.forEach((size, index) => {
    stdout.push(chunk(index, size));
    stderr.push(Buffer.from(`E${index}:${'x'.repeat((index * 977) % 40_000)}\n`));
  });
  return { stdout, stderr };
}

async function serve(channel: ServerChannel, plan: Plan): Promise<void> {
  assert.equal(repairWindowHandling(channel), true, 'ssh2\'s internals are the ones the repair knows');
  const pending: Promise<void>[] = [];
  plan.stdout.forEach((data, index) => {
    // Not awaited one by one: both streams have writes parked at once.
    pending.push(write(channel, data));
    pending.push(write(channel.stderr, plan.stderr[index] ?? Buffer.alloc(0)));
  });
  await Promise.all(pending);
  channel.exit(3);
  channel.end();
}

test('stdout and stderr through a slow reader arrive exactly, then the exit status', { timeout: 60_000 }, async () => {
  const plan = makePlan();
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  const server = new Server({ hostKeys: [hostKey] }, (connection) => {
    connection.on('authentication', (context) => { context.accept(); });
    connection.on('ready', () => {
      connection.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec) => { void serve(acceptExec(), plan); });
      });
    });
    connection.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  const { port } = server.address() as AddressInfo;
  const client = new Client();
  try {
    await new Promise<void>((resolve, reject) => {
      client.on('ready', resolve).on('error', reject).connect({ host: '127.0.0.1', port, username: 'test' });
    });
    const result = await new Promise<{ out: string; err: string; bytes: number; code: unknown }>((resolve, reject) => {
      client.exec('output', (error, stream) => {
        if (error) {
          reject(error);
          return;
        }
        const out = createHash('sha256');
        let bytes = 0;
        let err = '';
        let code: unknown;
        let reads = 0;
        // A slow reader: pause after every chunk, on and off, so the window runs out often.
        stream.on('data', (data: Buffer) => {
          out.update(data);
          bytes += data.length;
          reads += 1;
          if (reads % 7 === 0) {
            stream.pause();
            setTimeout(() => stream.resume(), 3);
          }
        });
        stream.stderr.on('data', (data: Buffer) => { err += data.toString('latin1'); });
        stream.on('exit', (status: unknown) => { code = status; });
        stream.on('close', () => { resolve({ out: out.digest('hex'), err, bytes, code }); });
      });
    });
    const expected = createHash('sha256');
    for (const data of plan.stdout) expected.update(data);
    assert.equal(result.bytes, plan.stdout.reduce((sum, data) => sum + data.length, 0), 'every stdout byte, once');
    assert.equal(result.out, expected.digest('hex'), 'stdout in order');
    assert.equal(result.err, Buffer.concat(plan.stderr).toString('latin1'), 'stderr in order');
    assert.equal(result.code, 3);
  } finally {
    client.end();
    await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
  }
});

test('internals the repair does not know are left alone (false: the server logs it)', () => {
  for (const stranger of [{}, { _write: () => undefined, stderr: {} }, { _write: () => undefined, stderr: { _write: () => undefined }, _chunk: undefined }]) {
    const before = JSON.stringify(Object.keys(stranger));
    assert.equal(repairWindowHandling(stranger as unknown as ServerChannel), false);
    assert.equal(JSON.stringify(Object.keys(stranger)), before, 'nothing added');
  }
});
