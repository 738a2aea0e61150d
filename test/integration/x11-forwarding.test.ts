// X11 forwarding end to end, with a real Xvfb as the person's display (cookie required, TCP off)
// and two real daemons on loopback: apps launched with `ebp run` (the CLI dialling itself, and
// relayed by its own daemon) show their windows there, take keys typed into them, and end with
// their last window; ending `ebp run` takes the windows away. The attacks run for real: the app
// cannot read the screen, cannot use XTEST, cannot type into the person's other windows, and
// reaches no X server but its own forwarded one.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import {
  baseEnv, clientDir, ebpIn, hostConfig, poolCleanup, sessionsOf, shown, startDaemon, startIn, tempDir, tempRoot, trustClient, waitUntil,
  type AppSpec, type PoolDaemon,
} from './helpers/pool.js';
import { geometry, run, screenshot, startXvfb, windowsNamed, X11_MISSING, xdotool, type Xvfb } from './helpers/xvfb.js';

const SKIP = !IS_ROOT ? 'needs root (sandboxes run as the ebp-sandbox user)' : X11_MISSING.length > 0 ? `missing ${X11_MISSING.join(', ')}` : false;

const X11_APPS: readonly AppSpec[] = [
  { id: 'xeyes', name: 'xeyes', exec: 'xeyes' },
  { id: 'xmessage', name: 'xmessage', exec: 'xmessage' },
  { id: 'xterm', name: 'xterm', exec: 'xterm' },
  { id: 'xwd', name: 'xwd', exec: 'xwd' },
  { id: 'xdotool', name: 'xdotool', exec: 'xdotool' },
  { id: 'xdpyinfo', name: 'xdpyinfo', exec: 'xdpyinfo' },
  { id: 'sh', name: 'Shell', exec: 'sh' },
  { id: 'probe', name: 'Probe', exec: 'python3' },
];

let x: Xvfb;
let hostA: PoolDaemon;
let relayB: PoolDaemon;
let paths: [string, string][];
let direct: string;
let counter = 0;

function title(label: string): string {
  counter += 1;
  return `ebp-${label}-${process.pid}-${counter}`;
}

/** `ebp run [FLAGS] A ARGS` with the Xvfb as DISPLAY. */
function launch(client: string, args: readonly string[], flags: readonly string[] = []): ReturnType<typeof startIn> {
  return startIn(client, ['run', ...flags, hostA.endpoint, ...args], { env: baseEnv(x.env), killAfterMs: 90_000 });
}

async function waitWindow(name: string, timeoutMs = 20_000): Promise<string> {
  return waitUntil(async () => (await windowsNamed(x, name))[0], timeoutMs, `a window named ${name}`, 100);
}

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  // The sandbox user passes through the test's temporary folder to bind its display folder.
  chmodSync(tempRoot(), 0o711);
  x = await startXvfb();
  [hostA, relayB] = await Promise.all([
    startDaemon({ label: 'A', config: hostConfig({ name: 'alpha', policy: 'trusted-only', apps: X11_APPS }) }),
    startDaemon({ label: 'B', config: hostConfig({ name: 'beta', apps: [] }), env: x.env }),
  ]);
  direct = clientDir('C');
  await trustClient(hostA, direct);
  await trustClient(hostA, relayB.stateDir);
  paths = [['direct', direct], ['relayed', relayB.stateDir]];
});
after(async () => {
  await poolCleanup();
  if (SKIP === false) await x.stop();
});

describe('windows on the person\'s display', { skip: SKIP }, () => {
  test('xeyes, xmessage and xterm show their windows; closing the last window ends the launch', { timeout: 180_000 }, async () => {
    for (const [path, client] of paths) {
      for (const app of ['xeyes', 'xmessage', 'xterm'] as const) {
        const name = title(app);
        const args = app === 'xmessage' ? [app, '-title', name, 'hello from the pool'] : [app, '-title', name];
        const started = launch(client, args);
        const window = await waitWindow(name).catch((error: unknown) => {
          throw new Error(`${path} ${app}: ${String(error)}\nstderr: ${started.stderr()}`);
        });
        // A window starts tiny and gets its size from the app a moment later.
        await waitUntil(async () => {
          const size = await geometry(x, window);
          return size.width > 20 && size.height > 20;
        }, 10_000, `${path} ${app}: a real window (${JSON.stringify(await geometry(x, window))})`, 100);
        // Closing the window (the X server drops the client, as a window manager's close does for
        // these apps) ends the app, and with it the session and `ebp run`.
        await xdotool(x, ['windowkill', window]);
        const result = await Promise.race([started.done, delay(15_000).then(() => undefined)]);
        assert.ok(result !== undefined, `${path} ${app}: ebp run ended after its window closed\nstderr: ${started.stderr()}`);
        assert.deepEqual(await windowsNamed(x, name), []);
      }
    }
    await waitUntil(async () => (await sessionsOf(hostA)).length === 0, 10_000, 'no session left on the host');
    assert.deepEqual(readdirSync(join(hostA.stateDir, 'display')), [], 'every display folder is gone with its session');
  });

  test('a screenshot of the display shows the remote window, not a blank screen', { timeout: 60_000 }, async () => {
    const name = title('shot');
    const started = launch(direct, ['xeyes', '-title', name]);
    const window = await waitWindow(name);
    await delay(500);
    const size = await geometry(x, window);
    const shot = await screenshot(x);
    let lit = 0;
    for (let py = size.y; py < size.y + size.height && py < shot.height; py += 1) {
      for (let px = size.x; px < size.x + size.width && px < shot.width; px += 1) if (shot.pixel(px, py) !== 0) lit += 1;
    }
    let outside = 0;
    for (let px = 0; px < shot.width; px += 1) if (shot.pixel(px, shot.height - 1) !== 0) outside += 1;
    assert.equal(outside, 0, 'the root window is black (-br): the check below means something');
    assert.ok(lit > (size.width * size.height) / 10, `xeyes drew its eyes: ${lit} of ${size.width * size.height} pixels lit`);
    started.child.kill('SIGTERM');
    await started.done;
  });

  test('keys typed into the remote xterm reach the app inside it', { timeout: 90_000 }, async () => {
    for (const [path, client] of paths) {
      const name = title('keys');
      const started = launch(client, ['sh', '-c', 'xterm -title "$1" -e sh -c \'read line; echo "got:$line" > /tmp/got\'; cat /tmp/got', 'sh', name]);
      const window = await waitWindow(name);
      await delay(300);
      await xdotool(x, ['windowfocus', '--sync', window]);
      await xdotool(x, ['type', '--delay', '20', 'typed here 42']);
      await xdotool(x, ['key', 'Return']);
      const result = await Promise.race([started.done, delay(20_000).then(() => undefined)]);
      assert.ok(result !== undefined, `${path}: the xterm ended after the line\n${started.stderr()}`);
      assert.equal(result.stdout, 'got:typed here 42\n', `${path}\n${shown(result)}`);
      assert.equal(result.code, 0);
    }
  });

  test('ending ebp run (SIGTERM, SIGKILL) takes the app and its windows away', { timeout: 120_000 }, async () => {
    for (const [path, client] of paths) {
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        const name = title('end');
        const started = launch(client, ['xeyes', '-title', name]);
        await waitWindow(name);
        started.child.kill(signal);
        await started.done;
        await waitUntil(async () => (await windowsNamed(x, name)).length === 0, 10_000, `${path} ${signal}: the window goes away`, 100);
        await waitUntil(async () => !(await sessionsOf(hostA)).some((s) => s.app === 'xeyes'), 15_000, `${path} ${signal}: the session ends on the host`, 100);
      }
    }
  });

  test('--no-x11 forwards nothing: no DISPLAY, no socket; an unusable DISPLAY only warns', { timeout: 60_000 }, async () => {
    const result = await ebpIn(direct, ['run', '--no-x11', hostA.endpoint, 'sh', '-c', 'echo "D=$DISPLAY"; ls /tmp/.X11-unix 2>&1 | head -1'], { env: baseEnv(x.env) });
    assert.equal(result.code, 0, shown(result));
    assert.match(result.stdout, /^D=\n/);
    assert.match(result.stdout, /No such file or directory/);
    // A DISPLAY that cannot be used (no such server) does not stop the app: a warning, no windows.
    const stale = await ebpIn(direct, ['run', hostA.endpoint, 'sh', '-c', 'echo "D=$DISPLAY"'], { env: baseEnv({ ...x.env, DISPLAY: ':4999' }) });
    assert.equal(stale.code, 0, shown(stale));
    assert.equal(stale.stdout, 'D=\n');
    assert.match(stale.stderr, /warning: .*display :4999.*running without windows/);
  });
});

describe('the remote app is untrusted', { skip: SKIP }, () => {
  test('it cannot capture the screen (xwd -root fails); --trusted-x11 allows it, with a warning', { timeout: 90_000 }, async () => {
    for (const [path, client] of paths) {
      const result = await ebpIn(client, ['run', hostA.endpoint, 'xwd', '-root', '-silent'], { env: baseEnv(x.env) });
      assert.notEqual(result.code, 0, `${path}: xwd -root must fail\n${shown(result)}`);
      assert.match(result.stderr, /unable to get image/, path);
      assert.ok(result.stdout.length < 1000, `${path}: no image came out (${result.stdout.length} bytes)`);
    }
    const trusted = await ebpIn(direct, ['run', '--trusted-x11', hostA.endpoint, 'sh', '-c', 'xwd -root -silent | wc -c'], { env: baseEnv(x.env) });
    assert.equal(trusted.code, 0, shown(trusted));
    assert.ok(Number(trusted.stdout.trim()) > 1024 * 768 * 3, `the trusted app can: ${trusted.stdout}`);
    assert.match(trusted.stderr, /full access to your display/);
  });

  test('XTEST is not there for it; typing into the person\'s own window does not get through', { timeout: 120_000 }, async () => {
    const info = await ebpIn(direct, ['run', hostA.endpoint, 'xdpyinfo', '-queryExtensions'], { env: baseEnv(x.env) });
    assert.equal(info.code, 0, shown(info));
    assert.match(info.stdout, /number of extensions:[\s\S]*BIG-REQUESTS/, 'the extension list came back');
    assert.doesNotMatch(info.stdout, /XTEST/, 'XTEST is hidden from the untrusted app');
    const trusted = await ebpIn(direct, ['run', '--trusted-x11', hostA.endpoint, 'xdpyinfo', '-queryExtensions'], { env: baseEnv(x.env) });
    assert.match(trusted.stdout, /XTEST/, 'a trusted app sees it: the check above can fail');
    // A window of the person's own (a local xterm that even accepts synthetic events) is the target.
    const dir = tempDir('victim');
    const victimFile = join(dir, 'typed');
    const name = title('victim');
    const victim = spawn('/usr/bin/xterm', ['-title', name, '-xrm', 'XTerm*allowSendEvents: true', '-e', 'sh', '-c', `read line; echo "$line" > ${victimFile}`], { env: { ...process.env, ...x.env }, stdio: 'ignore' });
    try {
      const window = await waitWindow(name);
      await delay(300);
      await xdotool(x, ['windowfocus', '--sync', window]);
      const attack = await ebpIn(direct, ['run', hostA.endpoint, 'sh', '-c', [
        'for w in $(xdotool search --name "$1" 2>/dev/null) "$2"; do',
        '  xdotool type --window "$w" pwned 2>&1; xdotool key --window "$w" Return 2>&1;',
        '  xdotool windowfocus "$w" 2>&1; xdotool type pwned 2>&1; xdotool key Return 2>&1;',
        'done; echo attack-done',
      ].join('\n'), 'sh', name, window], { env: baseEnv(x.env) });
      assert.match(attack.stdout, /attack-done/, shown(attack));
      await delay(500);
      // The person types the real line: only it may arrive.
      await xdotool(x, ['windowfocus', '--sync', window]);
      await xdotool(x, ['type', 'mine']);
      await xdotool(x, ['key', 'Return']);
      await waitUntil(() => existsSync(victimFile) && readFileSync(victimFile, 'utf8').includes('\n'), 10_000, 'the victim xterm wrote its line');
      assert.equal(readFileSync(victimFile, 'utf8'), 'mine\n', 'nothing the remote app typed reached the person\'s window');
    } finally {
      victim.kill('SIGKILL');
    }
  });

  test('no other X server is reachable inside: not the host\'s, not another session\'s', { timeout: 90_000 }, async () => {
    // A first session keeps its display open; its folder on the host is known.
    const name = title('other');
    const first = launch(direct, ['xeyes', '-title', name]);
    await waitWindow(name);
    const displayRoot = join(hostA.stateDir, 'display');
    const others = readdirSync(displayRoot).map((entry) => join(displayRoot, entry, 'sock', 'X0'));
    assert.ok(others.length >= 1);
    const probe = String.raw`
import errno, json, os, socket, sys
def attempt(addr, family=socket.AF_UNIX):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(addr)
        return 'OK'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()
reach = []
for n in range(0, 1000):
    if attempt('\0/tmp/.X11-unix/X%d' % n) == 'OK': reach.append('@X%d' % n)
    if n > 0 and attempt('/tmp/.X11-unix/X%d' % n) == 'OK': reach.append('X%d' % n)
for port in list(range(6000, 6100)) + [6000 + int(sys.argv[1])]:
    if attempt(('127.0.0.1', port), socket.AF_INET) == 'OK': reach.append('tcp%d' % port)
for path in sys.argv[2:]:
    if attempt(path) == 'OK': reach.append(path)
x11 = [l.split()[-1] for l in open('/proc/net/unix').read().splitlines()[1:] if len(l.split()) > 7 and 'X11' in l.split()[-1]]
print(json.dumps({'listing': sorted(os.listdir('/tmp/.X11-unix')), 'own': attempt('/tmp/.X11-unix/X0'), 'reach': reach, 'proc_unix': x11,
                  'state': os.path.exists(sys.argv[2]) if len(sys.argv) > 2 else None}))
`;
    try {
      for (const [path, client] of paths) {
        const result = await ebpIn(client, ['run', hostA.endpoint, 'probe', '-c', probe, String(x.number), ...others], { env: baseEnv(x.env) });
        assert.equal(result.code, 0, `${path}\n${shown(result)}`);
        const seen = JSON.parse(result.stdout) as { listing: string[]; own: string; reach: string[]; proc_unix: string[]; state: boolean };
        assert.deepEqual(seen.listing, ['X0'], `${path}: only its own display socket`);
        assert.equal(seen.own, 'OK', `${path}: its own display works (the probe can tell)`);
        assert.deepEqual(seen.reach, [], `${path}: nothing else answers`);
        assert.equal(seen.state, false, `${path}: the host's display folders are not there`);
        assert.deepEqual(seen.proc_unix, [], `${path}: no X socket of the host is listed`);
      }
      // From the host, the person's display is at the path the probe tried.
      assert.equal((await run('/usr/bin/xdpyinfo', ['-display', x.display], { ...process.env, ...x.env })).code, 0);
    } finally {
      first.child.kill('SIGTERM');
      await first.done;
    }
  });
});
