// The CLI's side of a launch relayed through the local daemon (control/frames.ts): output frames
// become the streams' data, the exit frame the status, as soon as it comes (the daemon ends the
// socket with it, but the launch is over already); a socket that closes without one is a broken
// session.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { encodeFrame, Frame } from '../../src/control/frame-codec.js';
import { framedProcess } from '../../src/control/frames.js';
import { scratchPaths } from './helpers/scratch.js';

const nextPath = scratchPaths('ebp-frames-');

/** A daemon's end that does `serve` with its socket, and the CLI's end connected to it. */
async function pair(serve: (socket: Socket) => void): Promise<{ client: Socket; server: Server }> {
  const path = nextPath();
  const server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const client = connect(path);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  return { client, server };
}

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += String(chunk);
  return out;
}

test('output frames are the streams\' data; the exit frame is the status and ends them', async () => {
  const { client, server } = await pair((socket) => {
    socket.write(encodeFrame(Frame.stdout, 'out '));
    socket.write(encodeFrame(Frame.stderr, 'err'));
    socket.write(encodeFrame(Frame.stdout, 'put'));
    socket.end(encodeFrame(Frame.exit, JSON.stringify({ kind: 'code', code: 3 })));
  });
  const remote = framedProcess(client, Buffer.alloc(0));
  const [exit, out, err] = await Promise.all([remote.exit, text(remote.stdout), text(remote.stderr)]);
  assert.deepEqual(exit, { kind: 'code', code: 3 });
  assert.deepEqual([out, err], ['out put', 'err']);
  client.destroy();
  server.close();
});

test('the status counts from the exit frame, before the socket closes', { timeout: 10_000 }, async () => {
  let held: Socket | undefined;
  const { client, server } = await pair((socket) => {
    held = socket;
    socket.write(encodeFrame(Frame.exit, JSON.stringify({ kind: 'signal', signal: 'TERM' })));
  });
  const remote = framedProcess(client, Buffer.alloc(0));
  assert.deepEqual(await remote.exit, { kind: 'signal', signal: 'TERM' });
  assert.equal(client.destroyed, false, 'the daemon has not closed it');
  client.destroy();
  held?.destroy();
  server.close();
});

test('onExitKnown hears the status in the turn its frame arrives, before `exit` settles', { timeout: 10_000 }, async () => {
  const { client, server } = await pair((socket) => {
    socket.write(encodeFrame(Frame.stdout, 'last words'));
    socket.end(encodeFrame(Frame.exit, JSON.stringify({ kind: 'code', code: 7 })));
  });
  const remote = framedProcess(client, Buffer.alloc(0));
  const order: string[] = [];
  let out = '';
  remote.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  void remote.exit.then(() => { order.push('exit settled'); });
  const heard = await new Promise<unknown>((resolve) => {
    remote.onExitKnown?.((exit) => {
      order.push('heard');
      // Same turn: no promise callback has run yet, and the output before it has been delivered.
      queueMicrotask(() => { order.push('next microtask'); });
      resolve({ exit, out });
    });
  });
  assert.deepEqual(heard, { exit: { kind: 'code', code: 7 }, out: 'last words' });
  await remote.exit;
  assert.deepEqual(order, ['heard', 'exit settled', 'next microtask']);
  client.destroy();
  server.close();
});

test('frames already read with the answer count; a socket closed without a status is a broken session', async () => {
  const { client, server } = await pair((socket) => {
    socket.end();
  });
  const remote = framedProcess(client, encodeFrame(Frame.stdout, 'early'));
  const [exit, out] = await Promise.all([remote.exit, text(remote.stdout)]);
  assert.deepEqual(exit, { kind: 'broken', message: 'the local daemon went away during the launch' });
  assert.equal(out, 'early');
  server.close();
});
