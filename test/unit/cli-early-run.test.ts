// The early launch's parts that stand alone: which command lines are plain launches
// (cli/run-request.ts plainRun: anything that needs the run command's options, display or files
// is not); the bare pipe client it speaks on (lib/raw-pipe.ts), against a real Unix socket
// server: connect errors, reading to the end, and the hand-over of the handle to a net.Socket
// that reads on from there; and the starter (cli/code-cache.ts runBundle) handing a launch the
// daemon did not take to the run bundle, or failing clearly when that bundle went away. The whole
// path against real daemons: integration/launch-early.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { plainRun, runRequestLine } from '../../src/cli/run-request.js';
import { openPty } from '../../src/lib/pty.js';
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

describe('the starter hands what the daemon did not take to the run command', () => {
  const LOADER = new URL('../../src/cli/code-cache.js', import.meta.url).href;
  const SLOT = 'Symbol.for("ebp.early-run")';

  interface Case {
    readonly dir: string;
    readonly runBundle: string;
    readonly report: string;
    readonly stateDir: string;
  }

  /** A bundle and the modules it was made from; its run bundle reports the launch it took over. */
  function setup(name: string): Case {
    const dir = join(work, name);
    const stateDir = join(dir, 'state');
    mkdirSync(join(stateDir, 'run'), { recursive: true, mode: 0o700 });
    const newest = join(dir, 'main.js');
    writeFileSync(newest, '');
    utimesSync(newest, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    writeFileSync(join(dir, 'ebp.cjs'), 'process.exitCode = 9;\n');
    const report = join(dir, 'report.json');
    const runBundle = join(dir, 'ebp-run.cjs');
    writeFileSync(runBundle, [
      `const early = globalThis[${SLOT}];`,
      `if (early === undefined) { require("node:fs").writeFileSync(${JSON.stringify(report)}, JSON.stringify({ early: false })); process.exit(5); }`,
      'let read = "";',
      'early.connection.on("data", (chunk) => { read += chunk; });',
      `early.connection.on("end", () => { require("node:fs").writeFileSync(${JSON.stringify(report)}, JSON.stringify({ spec: early.spec, read })); process.exit(4); });`,
    ].join('\n'));
    return { dir, runBundle, report, stateDir };
  }

  /** A daemon that takes one request and answers `answer` (after `before`), then ends. */
  async function daemon(c: Case, answer: string, before: () => void = () => undefined): Promise<{ requests: string[]; server: Server }> {
    const requests: string[] = [];
    const server = createServer((socket) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (!text.includes('\n')) return;
        requests.push(text);
        before();
        socket.end(answer);
      });
    });
    await new Promise<void>((resolve) => server.listen(join(c.stateDir, 'run', 'control.sock'), resolve));
    return { requests, server };
  }

  /** `ebp --state-dir S run peer app arg` through runBundle, stdout on /dev/null, stderr on a terminal. */
  async function run(c: Case): Promise<{ code: number | null; screen: string }> {
    const script = `import { runBundle } from ${JSON.stringify(LOADER)};
runBundle(${JSON.stringify(join(c.dir, 'ebp.cjs'))}, ${JSON.stringify(join(c.dir, 'main.js'))}, process.argv.slice(2));`;
    const pty = openPty();
    const devNull = openSync('/dev/null', 'r+');
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: join(c.dir, 'cache') };
    delete env['DISPLAY'];
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, '--', 'ebp', '--state-dir', c.stateDir, 'run', 'peer', 'app', 'arg'], {
      stdio: [devNull, devNull, pty.slaveFd], env,
    });
    closeSync(devNull);
    pty.closeSlave();
    let screen = '';
    pty.master.on('data', (chunk: Buffer) => { screen += chunk.toString(); });
    const code = await new Promise<number | null>((resolve) => { child.once('exit', resolve); });
    await new Promise((resolve) => setTimeout(resolve, 100));
    pty.master.destroy();
    return { code, screen };
  }

  test('an answer it does not know: the run bundle starts and reads it from the same connection, with the same launch; one request', async () => {
    const c = setup('handover');
    const answer = '{"ok":false,"error":{"code":"NOT_FOUND","message":"no such peer"}}\n';
    const { requests, server } = await daemon(c, answer);
    try {
      const { code, screen } = await run(c);
      assert.equal(code, 4, screen);
      const report = JSON.parse(readFileSync(c.report, 'utf8')) as { spec: unknown; read: string };
      assert.equal(report.read, answer);
      const expected = plainRun(['run', 'peer', 'app', 'arg'], { ...process.env, DISPLAY: '' });
      assert.ok(expected !== undefined);
      assert.deepEqual(report.spec, expected.spec);
      assert.deepEqual(requests, [runRequestLine(expected.spec)]);
    } finally {
      server.close();
    }
  });

  test('a daemon that died and left its socket: nothing goes out early; the run bundle starts on its own', async () => {
    const c = setup('dead-daemon');
    const made = spawnSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(c.stateDir, 'run', 'control.sock')]);
    assert.equal(made.status, 0, made.stderr.toString());
    const { code, screen } = await run(c);
    assert.equal(code, 5, screen);
    assert.deepEqual(JSON.parse(readFileSync(c.report, 'utf8')), { early: false });
  });

  test('the run bundle gone by then (a build replacing it): a clear error and 125, nothing else runs', async () => {
    const c = setup('gone');
    const { requests, server } = await daemon(c, '{"ok":false}\n', () => { unlinkSync(c.runBundle); });
    try {
      const { code, screen } = await run(c);
      assert.equal(code, 125, screen);
      assert.match(screen, /ebp-run\.cjs went away while ebp was starting/);
      assert.match(screen, /fix: run the command again/);
      assert.equal(requests.length, 1);
      assert.equal(existsSync(c.report), false);
    } finally {
      server.close();
    }
  });
});
