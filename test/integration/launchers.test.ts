// Launchers "as though installed": `ebp install PEER APP` against real daemons on loopback writes
// a desktop file that desktop-file-validate accepts, with the peer's icon stored locally; the
// Exec line, read back by the project's own desktop-entry and Exec parsers and run as a menu
// would run it, starts the app on the peer by its key (through the pool or at the last address,
// with or without a local daemon); a launcher whose key does not match the address refuses; a
// peer that is away or refuses is reported by a notification/dialog or in a log, never silently;
// `ebp uninstall` removes the file and the icon.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { deflateSync, crc32 } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { parseDesktopEntry } from '../../src/catalog/desktop-entry.js';
import { expandExec, parseExec } from '../../src/catalog/exec.js';
import { IS_ROOT, setupOnce } from './helpers/ebp.js';
import {
  baseEnv, clientDir, ebpIn, ebpOk, poolCleanup, shown, startDaemon, tempDir, trustClient, waitUntil, type PoolDaemon,
} from './helpers/pool.js';

const SKIP = IS_ROOT ? false : 'needs root (sandboxes run as the ebp-sandbox user)';

/** A real 2x2 RGBA PNG. */
function png(): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(2, 0);
  header.writeUInt32BE(2, 4);
  header.set([8, 6, 0, 0, 0], 8);
  const rows = Buffer.from([0, 255, 0, 0, 255, 0, 0, 255, 255, 0, 0, 0, 255, 255, 255, 0, 0, 255, 0, 255]);
  return Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

function hostToml(name: string, iconFile: string): string {
  const q = (text: string): string => JSON.stringify(text);
  return [
    `name = ${q(name)}`, '[discovery]', 'enabled = false', '[approval]', 'policy = "trusted-only"',
    // Prints the file it was given, then changes it: with file forwarding, the change lands locally.
    '[[extra_apps]]', 'id = "edit"', 'name = "Edit"', 'comment = "Edits text files"',
    `exec = ${q('sh -c "cat \\"\\$1\\"; echo edited-remotely >> \\"\\$1\\"" sh %f')}`,
    `icon = ${q(iconFile)}`, 'mime_types = ["text/plain"]', 'categories = ["Utility", "TextEditor"]',
    '[[extra_apps]]', 'id = "hello"', 'name = "Hello"', `exec = ${q('echo hello-from-the-peer')}`,
    '',
  ].join('\n');
}

interface Outcome { code: number | null; stdout: string; stderr: string }

const started = new Set<ChildProcess>();
after(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await poolCleanup();
});

/** Runs an argv (no shell), as a menu does; killed after 40 s. */
async function runArgv(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<Outcome> {
  const [program = '', ...args] = argv;
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  started.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 40_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  started.delete(child);
  return { code, stdout, stderr };
}

/** What a menu runs for this launcher with these files: the file parsed as the spec says. */
function launcherArgv(file: string, files: readonly string[]): string[] {
  const entry = parseDesktopEntry(readFileSync(file, 'utf8'), { id: 'launcher' });
  return expandExec(parseExec(entry.exec ?? ''), { args: files, name: entry.name });
}

function launcherFiles(dataHome: string): string[] {
  const dir = join(dataHome, 'applications');
  return existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.desktop')).map((name) => join(dir, name)) : [];
}

/** A menu session without any way to show a dialog: errors must land in the log. */
function headlessEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const dropped = new Set(['DISPLAY', 'WAYLAND_DISPLAY', 'DBUS_SESSION_BUS_ADDRESS', 'XDG_RUNTIME_DIR']);
  return { ...Object.fromEntries(Object.entries(baseEnv()).filter(([key]) => !dropped.has(key))), ...extra };
}

let host: PoolDaemon;
let relay: PoolDaemon;
let direct: string;
let iconFile: string;

before(async () => {
  if (SKIP !== false) return;
  await setupOnce();
  iconFile = join(tempDir('icon'), 'edit.png');
  writeFileSync(iconFile, png());
  [host, relay] = await Promise.all([
    startDaemon({ label: 'A', config: hostToml('alpha', iconFile) }),
    startDaemon({ label: 'B', config: 'name = "beta"\n[discovery]\nenabled = false\n' }),
  ]);
  direct = clientDir('C');
  await trustClient(host, direct);
  await trustClient(host, relay.stateDir);
});

describe('ebp install / installed / uninstall', { skip: SKIP }, () => {
  test('round trip at HOST:PORT without a daemon: a valid desktop file, the icon stored, then both removed', { timeout: 90_000 }, async () => {
    const dataHome = tempDir('data');
    const env = baseEnv({ XDG_DATA_HOME: dataHome });
    const installed = await ebpOk(direct, ['install', host.endpoint, 'edit'], { env });
    const [file, ...others] = launcherFiles(dataHome);
    assert.ok(file !== undefined && others.length === 0, shown(installed));
    assert.match(file, /\/applications\/ebp-[0-9a-f]{12}-edit\.desktop$/);
    const check = spawnSync('desktop-file-validate', [file], { encoding: 'utf8' });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    assert.equal(`${check.stdout}${check.stderr}`.trim(), '');
    const entry = parseDesktopEntry(readFileSync(file, 'utf8'), { id: 'x' });
    assert.equal(entry.name, 'Edit (on alpha)');
    assert.equal(entry.comment, 'Edits text files (runs on alpha)');
    assert.deepEqual(entry.mimeTypes, ['text/plain']);
    assert.deepEqual(entry.categories, ['Utility']);
    // The icon: fetched from the peer, stored under the person's data folder, byte for byte.
    const icon = entry.icon;
    assert.ok(icon?.startsWith(join(dataHome, 'ebp', 'icons')) === true, icon);
    assert.deepEqual(readFileSync(icon), readFileSync(iconFile));
    const argv = launcherArgv(file, ['/tmp/a file.txt']);
    assert.deepEqual(argv.slice(-7), ['run', '--notify-errors', '--address', host.endpoint, host.fingerprint, 'edit', '/tmp/a file.txt']);
    assert.ok(argv[0]?.startsWith('/') && argv[1]?.startsWith('/'), 'absolute node and ebp');

    const listed = JSON.parse((await ebpOk(direct, ['installed', '--json'], { env })).stdout) as { appId: string; fingerprint: string; address: string; peerName: string; file: string }[];
    assert.deepEqual(listed.map((l) => [l.appId, l.fingerprint, l.address, l.peerName, l.file]), [['edit', host.fingerprint, host.endpoint, 'alpha', file]]);

    // Uninstall reads only the local files (no peer needed), by the peer name as shown.
    await ebpOk(direct, ['uninstall', 'alpha', 'edit'], { env });
    assert.deepEqual(launcherFiles(dataHome), []);
    assert.equal(existsSync(icon), false, 'the icon is removed too');
    assert.deepEqual(JSON.parse((await ebpOk(direct, ['installed', '--json'], { env })).stdout), []);
    const again = await ebpIn(direct, ['uninstall', 'alpha', 'edit'], { env });
    assert.equal(again.code, 1, shown(again));
    assert.match(again.stderr, /no launcher for "edit" on "alpha"/);
  });

  test('an app the peer does not share is refused and nothing is written', { timeout: 60_000 }, async () => {
    const dataHome = tempDir('data');
    const result = await ebpIn(direct, ['install', host.endpoint, 'nosuch'], { env: baseEnv({ XDG_DATA_HOME: dataHome }) });
    assert.equal(result.code, 1, shown(result));
    assert.match(result.stderr, /does not share "nosuch"/);
    assert.deepEqual(launcherFiles(dataHome), []);
  });

  test('by name through the local daemon; the launcher runs the app; with the peer gone from the pool it uses the last address', { timeout: 120_000 }, async () => {
    const dataHome = tempDir('data');
    const env = baseEnv({ XDG_DATA_HOME: dataHome });
    await ebpOk(relay.stateDir, ['peers', 'add', host.endpoint]);
    await waitUntil(async () => (await ebpIn(relay.stateDir, ['apps', 'alpha'])).code === 0, 20_000, 'alpha in the pool of beta');
    await ebpOk(relay.stateDir, ['install', 'alpha', 'hello'], { env });
    const [file] = launcherFiles(dataHome);
    assert.ok(file !== undefined);
    const text = readFileSync(file, 'utf8');
    assert.match(text, new RegExp(`^X-Ebp-Peer=${host.fingerprint.replace(/[+/]/g, '\\$&')}$`, 'm'));
    assert.doesNotMatch(text, /^MimeType=/m, 'an app that takes no files gets no MIME types');
    const argv = launcherArgv(file, []);
    const run = await runArgv(argv, headlessEnv({}));
    assert.equal(run.code, 0, JSON.stringify(run));
    assert.equal(run.stdout, 'hello-from-the-peer\n');

    await ebpOk(relay.stateDir, ['peers', 'remove', host.endpoint]);
    const plain = await ebpIn(relay.stateDir, ['run', host.fingerprint, 'hello']);
    assert.notEqual(plain.code, 0, `without --address an unknown key is not reachable: ${shown(plain)}`);
    const fallback = await runArgv(argv, headlessEnv({}));
    assert.equal(fallback.code, 0, JSON.stringify(fallback));
    assert.equal(fallback.stdout, 'hello-from-the-peer\n');
  });

  test('without a daemon the launcher reaches the peer at its address; a key that does not match is refused', { timeout: 90_000 }, async () => {
    const dataHome = tempDir('data');
    await ebpOk(direct, ['install', host.endpoint, 'hello'], { env: baseEnv({ XDG_DATA_HOME: dataHome }) });
    const [file] = launcherFiles(dataHome);
    assert.ok(file !== undefined);
    const argv = launcherArgv(file, []);
    const run = await runArgv(argv, headlessEnv({}));
    assert.equal(run.code, 0, JSON.stringify(run));
    assert.equal(run.stdout, 'hello-from-the-peer\n');
    // Another machine's key at alpha's address: the launcher must not run there.
    const forged = argv.map((word) => (word === host.fingerprint ? relay.fingerprint : word));
    const refused = await runArgv(forged, headlessEnv({}));
    assert.equal(refused.code, 255, JSON.stringify(refused));
    assert.match(refused.stderr, /not the machine it claims to be/);
    assert.equal(refused.stdout, '');
  });

  test('a peer that is away or refuses is reported (log without a display, xmessage on a display), never silently', { timeout: 120_000 }, async () => {
    const away = await startDaemon({ label: 'E', config: 'name = "epsilon"\n[discovery]\nenabled = false\n[approval]\npolicy = "open"\n[[extra_apps]]\nid = "hello"\nname = "Hello"\nexec = "echo hi"\n' });
    const client = clientDir('F');
    const dataHome = tempDir('data');
    await ebpOk(client, ['install', away.endpoint, 'hello'], { env: baseEnv({ XDG_DATA_HOME: dataHome }) });
    const [file] = launcherFiles(dataHome);
    assert.ok(file !== undefined);
    const argv = launcherArgv(file, []);
    await away.stop();
    const log = join(client, 'launcher-errors.log');
    const failed = await runArgv(argv, headlessEnv({}));
    assert.equal(failed.code, 255, JSON.stringify(failed));
    assert.match(readFileSync(log, 'utf8'), /cannot start the app: cannot reach 127\.0\.0\.1:\d+: connection refused/);

    // The peer answers but refuses (an app it does not share): its "ebp:" lines are reported.
    const refusedArgv = launcherArgv(file, []).map((word, index, all) => (index === all.length - 1 ? 'nosuch' : word));
    const hostArgv = refusedArgv.map((word) => word === away.endpoint ? host.endpoint : word === away.fingerprint ? host.fingerprint : word);
    await trustClient(host, client);
    const refused = await runArgv(hostArgv, headlessEnv({}));
    assert.equal(refused.code, 1, JSON.stringify(refused));
    assert.match(readFileSync(log, 'utf8'), /the app did not run: ebp: "nosuch" is not an app this machine shares/);

    // On a display, a dialog: xmessage (no notification daemon here), with the message as data.
    const xvfb = spawnSync('which', ['Xvfb', 'xmessage'], { encoding: 'utf8' });
    if (xvfb.status !== 0) return;
    const server = spawn('Xvfb', ['-displayfd', '1', '-nolisten', 'tcp', '-screen', '0', '320x240x24'], { stdio: ['ignore', 'pipe', 'ignore'] });
    started.add(server);
    try {
      let display = '';
      server.stdout.on('data', (chunk: Buffer) => (display += chunk.toString()));
      await waitUntil(() => /^\d+\n/.test(display), 15_000, 'Xvfb to print its display number');
      const shownOnDisplay = await runArgv(argv, headlessEnv({ DISPLAY: `:${display.trim()}` }));
      assert.equal(shownOnDisplay.code, 255);
      const dialog = await waitUntil(() => readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).find((pid) => {
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          return cmdline[0]?.endsWith('xmessage') === true && cmdline.some((word) => word.includes(`cannot reach ${away.endpoint}`));
        } catch {
          return false;
        }
      }), 10_000, 'an xmessage dialog with the error');
      process.kill(Number(dialog), 'SIGTERM');
    } finally {
      server.kill('SIGTERM');
      await delay(100);
    }
  });

  test('ebp:icon over SSH: the catalogued icon of a shared app only; hostile ids and icon-less apps refused', { timeout: 60_000 }, async () => {
    const served = await ebpOk(direct, ['run', host.endpoint, 'ebp:icon', 'edit']);
    const answer = JSON.parse(served.stdout) as { type: string; data: string };
    assert.equal(answer.type, 'image/png');
    assert.deepEqual(Buffer.from(answer.data, 'base64'), readFileSync(iconFile));
    const refusals: [string[], RegExp][] = [
      [['hello'], /"hello" has no icon/],
      [['nosuch'], /"nosuch" is not an app this machine shares/],
      [['../../etc/passwd'], /ebp:icon takes one app id/],
      [[iconFile], /ebp:icon takes one app id/],
      [['edit', 'hello'], /ebp:icon takes one app id/],
      [[], /ebp:icon takes one app id/],
    ];
    for (const [args, message] of refusals) {
      const result = await ebpIn(direct, ['run', host.endpoint, 'ebp:icon', ...args]);
      assert.notEqual(result.code, 0, `${JSON.stringify(args)}: ${shown(result)}`);
      assert.equal(result.stdout, '', JSON.stringify(args));
      assert.match(result.stderr, message, JSON.stringify(args));
    }
  });

  // `ebp run PEER APP FILE` forwards local files: the remote app reads this one, its edit lands here.
  test('"Open with": the Exec line with a local text file opens it in the remote app and the edit lands locally', { timeout: 120_000 }, async () => {
    const dataHome = tempDir('data');
    await ebpOk(direct, ['install', host.endpoint, 'edit'], { env: baseEnv({ XDG_DATA_HOME: dataHome }) });
    const [file] = launcherFiles(dataHome);
    assert.ok(file !== undefined);
    const local = join(tempDir('docs'), 'notes.txt');
    writeFileSync(local, 'written-locally\n');
    const run = await runArgv(launcherArgv(file, [local]), headlessEnv({}));
    assert.equal(run.code, 0, JSON.stringify(run));
    assert.match(run.stdout, /written-locally/);
    assert.equal(readFileSync(local, 'utf8'), 'written-locally\nedited-remotely\n');
  });
});
