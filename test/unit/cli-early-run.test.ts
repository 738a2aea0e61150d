// The early launch's two parts that stand alone: which command lines are plain launches
// (cli/run-request.ts plainRun: anything that needs the run command's options, display or files
// is not), and the bare pipe client it speaks on (lib/raw-pipe.ts), against a real Unix socket
// server: connect errors, reading to the end, and the hand-over of the handle to a net.Socket
// that reads on from there. The whole path against real daemons: integration/launch-early.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { plainRun } from '../../src/cli/run-request.js';
import { connectRawPipe, UV_EOF } from '../../src/lib/raw-pipe.js';

const work = mkdtempSync(join(tmpdir(), 'ebp-early-run-'));
after(() => { rmSync(work, { recursive: true, force: true }); });

describe('plain launches', () => {
  const env = { LANG: 'C.UTF-8', LC_TIME: 'en_GB.UTF-8', HOME: '/root', SECRET: 'x' };

  test('PEER APP ARGS, with the state dir before the command; every word after PEER is the app\'s', () => {
    assert.deepEqual(plainRun(['run', 'alpha', 'app', 'x'], env), {
      stateDir: undefined,
      spec: { peer: 'alpha', command: ['app', 'x'], env: { LANG: 'C.UTF-8', LC_TIME: 'en_GB.UTF-8' } },
    });
    assert.deepEqual(plainRun(['--state-dir', '/s', 'run', '127.0.0.1:20101', 'app', '--help', '-x', '--', '--bind', '/', '/'], {}), {
      stateDir: '/s',
      spec: { peer: '127.0.0.1:20101', command: ['app', '--help', '-x', '--', '--bind', '/', '/'], env: {} },
    });
  });

  test('options, a missing PEER or APP, other commands: not plain', () => {
    for (const argv of [
      ['run', '--no-x11', 'alpha', 'app'], ['run', '--share', '/tmp', 'alpha', 'app'], ['run', '--any', 'app'], ['--json', 'run', 'alpha', 'app'],
      ['run', '-h', 'alpha', 'app'], ['run', '--', 'alpha', 'app'], ['run', 'alpha'], ['run'], ['--state-dir'], ['--state-dir', '/s'],
      ['apps', 'alpha', 'app'], ['alpha', 'run', 'app'], ['--state-dir=/s', 'run', 'alpha', 'app'],
    ]) {
      assert.equal(plainRun(argv, {}), undefined, JSON.stringify(argv));
    }
  });

  test('a display to forward is not plain (its cookie is the run command\'s to make); an empty DISPLAY is none', () => {
    assert.equal(plainRun(['run', 'alpha', 'app'], { DISPLAY: ':0' }), undefined);
    assert.notEqual(plainRun(['run', 'alpha', 'app'], { DISPLAY: '' }), undefined);
  });

  test('an argument naming a local file is not plain (the file is forwarded); folders, missing paths and options are', () => {
    const dir = join(work, 'files');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'doc.txt');
    writeFileSync(file, 'x');
    assert.equal(plainRun(['run', 'alpha', 'app', file], {}), undefined);
    assert.equal(plainRun(['run', 'alpha', 'app', '-x', file], {}), undefined);
    assert.notEqual(plainRun(['run', 'alpha', 'app', dir, join(dir, 'missing'), `--out=${file}`], {}), undefined);
    // The app's name is not an argument: a file of that name here changes nothing.
    assert.notEqual(plainRun(['run', 'alpha', file], {}), undefined);
  });
});

describe('the bare pipe client', () => {
  let cases = 0;

  async function serve(onConnection: (socket: Socket) => void): Promise<{ path: string; server: Server }> {
    cases += 1;
    const path = join(work, `s${cases}.sock`);
    const server = createServer(onConnection);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    return { path, server };
  }

  test('a missing socket and one nobody listens on are connect errors (-ENOENT, -ECONNREFUSED)', async () => {
    const missing = await new Promise<number>((resolve) => { connectRawPipe(join(work, 'nothing.sock'), resolve); });
    assert.equal(missing, -2);
    // A socket file nobody listens on: what a daemon that died leaves.
    const path = join(work, 'dead.sock');
    const made = spawnSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
    assert.equal(made.status, 0, made.stderr.toString());
    const refused = await new Promise<number>((resolve) => { connectRawPipe(path, resolve); });
    assert.equal(refused, -111);
  });

  test('writes reach the server; what it sends comes in order, then the end', async () => {
    const { path, server } = await serve((socket) => {
      socket.once('data', (request) => {
        socket.write(`got ${request.toString()}|`);
        socket.end('bye');
      });
    });
    try {
      const received: Buffer[] = [];
      const status = await new Promise<number>((resolve) => {
        const pipe = connectRawPipe(path, (connected) => {
          assert.equal(connected, 0);
          assert.equal(pipe?.write(Buffer.from('hello')), true);
          pipe.read((chunk) => { received.push(chunk); }, (end) => {
            pipe.close();
            resolve(end);
          });
        });
        assert.notEqual(pipe, undefined);
      });
      assert.equal(status, UV_EOF);
      assert.equal(Buffer.concat(received).toString(), 'got hello|bye');
    } finally {
      server.close();
    }
  });

  test('handed to a net.Socket, the connection reads on where the raw reads stopped, and writes', async () => {
    let serverSide: Socket | undefined;
    const { path, server } = await serve((socket) => {
      serverSide = socket;
      socket.write('first');
    });
    try {
      const first = await new Promise<{ socket: Socket; chunk: string }>((resolve) => {
        const pipe = connectRawPipe(path, () => {
          pipe?.read((chunk) => { resolve({ socket: pipe.toSocket(), chunk: chunk.toString() }); }, () => undefined);
        });
      });
      assert.equal(first.chunk, 'first');
      const { socket } = first;
      const fromServer = new Promise<string>((resolve) => {
        let text = '';
        socket.on('data', (chunk: Buffer) => { text += chunk.toString(); });
        socket.once('end', () => { resolve(text); });
      });
      const fromClient = new Promise<string>((resolve) => { serverSide?.once('data', (chunk: Buffer) => { resolve(chunk.toString()); }); });
      socket.write('from the socket');
      assert.equal(await fromClient, 'from the socket');
      serverSide?.end('second');
      assert.equal(await fromServer, 'second');
      socket.destroy();
    } finally {
      server.close();
    }
  });

  test('under --pending-deprecation (process.binding() would warn) there is no bare client: undefined, and no warning', () => {
    const module = new URL('../../src/lib/raw-pipe.js', import.meta.url).href;
    const script = `import { connectRawPipe } from ${JSON.stringify(module)};
process.stdout.write(String(connectRawPipe('/nonexistent.sock', () => undefined)));`;
    for (const how of [['--pending-deprecation'], []] as const) {
      const result = spawnSync(process.execPath, [...how, '--input-type=module', '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, ...(how.length === 0 ? { NODE_OPTIONS: '--pending-deprecation' } : {}) },
      });
      assert.equal(result.stdout, 'undefined', result.stderr);
      assert.doesNotMatch(result.stderr, /DeprecationWarning/);
    }
  });
});
