// X11 forwarding benchmark: `ebp run A xeyes` against OpenSSH's `ssh -X` on the same machine.
// The person's display is a private Xvfb (`-auth`, `-noreset`, TCP off); the anchor is a private
// sshd on 127.0.0.1 with X11Forwarding, logging in a dedicated user `ebp-bench-x11` with the stock
// /etc/skel shell files; the ebp side is host daemon A and client daemon B (warm path, relayed)
// plus B2, B's identity without a daemon (cold path, the CLI dials A itself). Both sides forward
// untrusted (ForwardX11Trusted=no; ebp's default).
//
//   1. time to first window of xeyes: from spawning the client command to the X server's
//      MapNotify for the new window (a watcher connection of our own on the root window);
//      fresh `ssh -X`, `ssh -X` through a warm ControlMaster, cold and warm `ebp run`;
//   2. x11perf's round-trip-heavy tests (-getimage10 -prop -pointer): direct, through ssh -X
//      and through ebp (warm).
//
// Everything it starts (Xvfb, sshd, daemons, the master, the user, the temp folder) is removed at
// the end, also when a step fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { round, summarize, type Summary } from './stats.js';
import { ebpCommand, freePort, must, prepareLoginUser, run } from './proc.js';
import { DAEMON_NODE_FLAGS } from '../src/daemon/node-flags.js';

const HOST = '127.0.0.1';
const BENCH_USER = 'ebp-bench-x11';
const BENCH_USER_MARK = 'eBrainPool X11 benchmark (bench/x11.ts)';
const X11PERF_TESTS = ['-getimage10', '-prop', '-pointer'] as const;
export const X11_TARGETS = { firstWindow: 0.8, x11perf: 0.9 } as const;

export interface X11BenchOptions {
  readonly root: string;
  readonly runs: number;
  readonly log: (message: string) => void;
}

export interface FirstWindowRow {
  readonly name: string;
  readonly ms: Summary;
  readonly failures: number;
}

export interface X11PerfRow {
  readonly test: string;
  readonly direct: number | undefined;
  readonly ssh: number | undefined;
  readonly ebp: number | undefined;
}

export interface X11BenchResult {
  readonly skipped?: string;
  readonly runs: number;
  readonly firstWindow: readonly FirstWindowRow[];
  readonly x11perf: readonly X11PerfRow[];
  readonly notes: readonly string[];
  readonly durationS: number;
}

async function waitText(read: () => string, pattern: RegExp, what: string, timeoutMs = 15_000): Promise<RegExpExecArray> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(read());
    if (match !== null) return match;
    if (performance.now() > deadline) throw new Error(`${what} did not start: ${read().slice(-500)}`);
    await delay(20);
  }
}

/**
 * A minimal X client: connects with the person's cookie, asks for SubstructureNotify on the root
 * window, and reports every MapNotify (a top-level window appearing) with its time.
 */
class MapWatcher {
  readonly #socket: Socket;
  readonly #waiters: ((at: number) => void)[] = [];

  private constructor(socket: Socket) {
    this.#socket = socket;
  }

  static async open(display: number, cookie: Buffer): Promise<MapWatcher> {
    const socket = connect(`/tmp/.X11-unix/X${display}`);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const name = Buffer.from('MIT-MAGIC-COOKIE-1');
    const setup = Buffer.alloc(12 + 20 + cookie.length);
    setup[0] = 0x6c;
    setup.writeUInt16LE(11, 2);
    setup.writeUInt16LE(name.length, 6);
    setup.writeUInt16LE(cookie.length, 8);
    name.copy(setup, 12);
    cookie.copy(setup, 32);
    socket.write(setup);
    const reply = await new Promise<Buffer>((resolve, reject) => {
      let buffer = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        buffer = Buffer.concat([buffer, chunk]);
        if (buffer.length < 8) return;
        const total = 8 + buffer.readUInt16LE(6) * 4;
        if (buffer.length < total) return;
        socket.off('data', onData);
        if (buffer[0] !== 1) reject(new Error('the X server refused the watcher'));
        else resolve(buffer);
      };
      socket.on('data', onData);
    });
    const vendorLength = reply.readUInt16LE(24);
    const formats = reply[29] ?? 0;
    const root = reply.readUInt32LE(40 + vendorLength + ((4 - (vendorLength % 4)) % 4) + formats * 8);
    // ChangeWindowAttributes(root, event-mask = SubstructureNotify).
    const request = Buffer.alloc(16);
    request[0] = 2;
    request.writeUInt16LE(4, 2);
    request.writeUInt32LE(root, 4);
    request.writeUInt32LE(1 << 11, 8);
    request.writeUInt32LE(1 << 19, 12);
    socket.write(request);
    const watcher = new MapWatcher(socket);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      const at = performance.now();
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 32) {
        if (((pending[0] ?? 0) & 0x7f) === 19) for (const waiter of watcher.#waiters.splice(0)) waiter(at);
        pending = pending.subarray(32);
      }
    });
    return watcher;
  }

  nextMap(timeoutMs: number): Promise<number | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { resolve(undefined); }, timeoutMs);
      this.#waiters.push((at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

class Fixture {
  readonly dir = mkdtempSync('/tmp/ebp-bench-x11-');
  readonly children: ChildProcess[] = [];
  userOurs = false;
  madeRunSshd = false;
  sshPort = 0;
  peerPort = 0;
  display = 0;
  cookie = Buffer.alloc(0);

  constructor(readonly ebp: string) {
    // The sandbox user passes through to A's display folders; the bench user reads its keys here.
    chmodSync(this.dir, 0o755);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, DISPLAY: `:${this.display}`, XAUTHORITY: this.path('Xauthority') };
  }

  /** A child that dies with this process; its stderr is kept (the last 64 KiB) for waitText. */
  start(argv: readonly string[], env?: NodeJS.ProcessEnv): { child: ChildProcess; err: () => string } {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env: env ?? process.env });
    let text = '';
    child.stderr.on('data', (chunk: Buffer) => {
      text = (text + chunk.toString()).slice(-65536);
    });
    child.on('error', () => undefined);
    this.children.push(child);
    return { child, err: () => text };
  }

  ebpArgs(state: string, ...args: string[]): string[] {
    return [process.execPath, this.ebp, '--state-dir', this.path(state), ...args];
  }

  /** `ebp up`, started as `npm start` and the systemd unit start it: with the daemon's Node options. */
  daemonArgs(state: string, ...args: string[]): string[] {
    return [process.execPath, ...DAEMON_NODE_FLAGS, this.ebp, '--state-dir', this.path(state), 'up', ...args];
  }

  ssh(...extra: string[]): string[] {
    return [
      'ssh', '-F', '/dev/null', '-i', this.path('client_key'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'LogLevel=error', '-o', 'BatchMode=yes', '-o', 'XAuthLocation=/usr/bin/xauth', '-X', '-o', 'ForwardX11Trusted=no',
      '-p', String(this.sshPort), ...extra, `${BENCH_USER}@${HOST}`,
    ];
  }

  master(): string[] {
    return ['-o', 'ControlMaster=auto', '-o', `ControlPath=${this.path('cm')}`, '-o', 'ControlPersist=120'];
  }

  cleanUp(): void {
    if (this.sshPort !== 0) run([...this.ssh(...this.master(), '-O', 'exit')], { env: this.env, timeoutMs: 5000 });
    for (const child of [...this.children].reverse()) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
    spawnSync('sleep', ['1']);
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (this.userOurs) {
      for (let attempt = 0; attempt < 20; attempt += 1) {
        if (run(['userdel', BENCH_USER]).status === 0 || run(['id', BENCH_USER]).status !== 0) break;
        spawnSync('sleep', ['0.1']);
      }
      if (run(['getent', 'group', BENCH_USER]).status === 0) run(['groupdel', BENCH_USER]);
    }
    rmSync(this.dir, { recursive: true, force: true });
    if (this.madeRunSshd && existsSync('/run/sshd') && readdirSync('/run/sshd').length === 0) rmSync('/run/sshd', { recursive: true });
  }
}

async function startXvfb(fixture: Fixture): Promise<void> {
  fixture.cookie = randomBytes(16);
  const auth = fixture.path('Xauthority');
  writeFileSync(auth, '', { mode: 0o600 });
  for (let n = 600 + Math.floor(Math.random() * 200); ; n += 1) {
    if (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) continue;
    fixture.display = n;
    must(['xauth', '-q', '-f', auth, 'add', `:${n}`, 'MIT-MAGIC-COOKIE-1', fixture.cookie.toString('hex')], 'xauth add');
    fixture.start(['Xvfb', `:${n}`, '-auth', auth, '-nolisten', 'tcp', '-noreset', '-br', '-screen', '0', '1024x768x24']);
    for (let i = 0; i < 100; i += 1) {
      if (existsSync(`/tmp/.X11-unix/X${n}`) && run(['xdpyinfo'], { env: fixture.env, timeoutMs: 5000 }).status === 0) return;
      await delay(50);
    }
    throw new Error('Xvfb did not start');
  }
}

async function startSshd(fixture: Fixture): Promise<void> {
  if (!existsSync('/run/sshd')) {
    mkdirSync('/run/sshd', { mode: 0o755 });
    fixture.madeRunSshd = true;
  }
  must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', fixture.path('host_key')], 'ssh-keygen');
  must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', fixture.path('client_key')], 'ssh-keygen');
  writeFileSync(fixture.path('authorized_keys'), readFileSync(fixture.path('client_key.pub')), { mode: 0o644 });
  const home = fixture.path('home');
  const { ours } = prepareLoginUser(BENCH_USER, BENCH_USER_MARK, home);
  fixture.userOurs = ours;
  fixture.sshPort = await freePort(HOST);
  writeFileSync(fixture.path('sshd_config'), [
    `Port ${fixture.sshPort}`, `ListenAddress ${HOST}`, `HostKey ${fixture.path('host_key')}`, 'PidFile none', 'UsePAM no',
    `AuthorizedKeysFile ${fixture.path('authorized_keys')}`, 'StrictModes no', 'PermitRootLogin no', `AllowUsers ${BENCH_USER}`,
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PrintMotd no', 'PrintLastLog no',
    'X11Forwarding yes', 'X11UseLocalhost yes', 'X11DisplayOffset 10', 'XAuthLocation /usr/bin/xauth', '',
  ].join('\n'));
  const sshd = fixture.start(['/usr/sbin/sshd', '-D', '-e', '-f', fixture.path('sshd_config')]);
  await waitText(sshd.err, /Server listening on/, 'sshd');
}

async function startEbp(fixture: Fixture): Promise<void> {
  writeFileSync(fixture.path('host.toml'), [
    '[ui]', 'enabled = false', '[discovery]', 'enabled = false', '[approval]', 'policy = "trusted-only"',
    '[[extra_apps]]', 'id = "xeyes"', 'name = "xeyes"', 'exec = "xeyes"',
    '[[extra_apps]]', 'id = "x11perf"', 'name = "x11perf"', 'exec = "x11perf"',
    '[[extra_apps]]', 'id = "true"', 'name = "true"', 'exec = "true"', '',
  ].join('\n'));
  writeFileSync(fixture.path('client.toml'), '[ui]\nenabled = false\n[discovery]\nenabled = false\n');
  const key = must(fixture.ebpArgs('B', 'id', '--public-key'), 'ebp id').trim();
  must(fixture.ebpArgs('A', 'trust', '--key', key), 'ebp trust');
  const hostA = fixture.start(fixture.daemonArgs('A', '--port', '0', '--listen', HOST, '--config', fixture.path('host.toml')));
  fixture.peerPort = Number((await waitText(hostA.err, /on port (\d+)|port=(\d+)/, 'daemon A'))[0].replace(/\D+/g, ''));
  const clientB = fixture.start(fixture.daemonArgs('B', '--port', '0', '--listen', HOST, '--config', fixture.path('client.toml')));
  await waitText(clientB.err, /daemon-started/, 'daemon B');
  // First contact through B's daemon: it learns A's key and opens its pooled connection.
  must(fixture.ebpArgs('B', 'run', '--no-x11', `${HOST}:${fixture.peerPort}`, 'true'), 'first ebp run');
  mkdirSync(fixture.path('B2'), { mode: 0o700 });
  cpSync(fixture.path('B', 'identity'), fixture.path('B2', 'identity'), { recursive: true });
  cpSync(fixture.path('B', 'known-peers.json'), fixture.path('B2', 'known-peers.json'));
}

/** Spawns `argv`, waits for the first window it maps, then ends it and waits for it to go. */
async function firstWindow(fixture: Fixture, watcher: MapWatcher, argv: readonly string[]): Promise<number | undefined> {
  const began = performance.now();
  const mapped = watcher.nextMap(15_000);
  const [command, ...args] = argv;
  const child = spawn(command ?? 'false', args, { stdio: 'ignore', env: fixture.env });
  const closed = new Promise<void>((resolve) => child.once('close', () => { resolve(); }));
  const at = await mapped;
  child.kill('SIGTERM');
  await Promise.race([closed, delay(5000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await closed;
  await delay(150);
  return at === undefined ? undefined : at - began;
}

function parseX11perf(output: string): Map<string, number> {
  const rates = new Map<string, number>();
  for (const match of output.matchAll(/\(\s*([\d.]+)\/sec\):\s*(.+)$/gm)) rates.set((match[2] ?? '').trim(), Number(match[1]));
  return rates;
}

export async function benchX11(options: X11BenchOptions): Promise<X11BenchResult> {
  const began = performance.now();
  const empty = (skipped: string): X11BenchResult => ({ skipped, runs: 0, firstWindow: [], x11perf: [], notes: [], durationS: 0 });
  if (process.getuid?.() !== 0) return empty('needs root (a private sshd, a login user for it)');
  for (const tool of ['/usr/bin/Xvfb', '/usr/bin/xauth', '/usr/bin/xeyes', '/usr/bin/x11perf', '/usr/bin/xdpyinfo', '/usr/sbin/sshd', '/usr/bin/ssh', '/usr/bin/setpriv']) {
    if (!existsSync(tool)) return empty(`${tool} is not installed`);
  }
  const fixture = new Fixture(ebpCommand(options.root));
  const onExit = (): void => { fixture.cleanUp(); };
  process.once('exit', onExit);
  const notes: string[] = [];
  let watcher: MapWatcher | undefined;
  try {
    options.log(`x11: Xvfb, private sshd (X11Forwarding) with user ${BENCH_USER}, ebp daemons A and B in ${fixture.dir}`);
    await startXvfb(fixture);
    await startSshd(fixture);
    await startEbp(fixture);
    watcher = await MapWatcher.open(fixture.display, fixture.cookie);
    const peer = `${HOST}:${fixture.peerPort}`;
    // The master holds its own X11 forwarding; sessions through it ask for theirs on its connection.
    must([...fixture.ssh(...fixture.master()), 'true'], 'ssh ControlMaster', { env: fixture.env, timeoutMs: 60_000 });
    const candidates: { name: string; argv: string[] }[] = [
      { name: 'ssh -X (fresh connection)', argv: [...fixture.ssh(), 'xeyes'] },
      { name: 'ssh -X (warm ControlMaster)', argv: [...fixture.ssh(...fixture.master()), 'xeyes'] },
      { name: 'ebp run (cold: the CLI dials)', argv: fixture.ebpArgs('B2', 'run', peer, 'xeyes') },
      { name: 'ebp run (warm: through the daemon)', argv: fixture.ebpArgs('B', 'run', peer, 'xeyes') },
    ];
    const samples = new Map<string, number[]>(candidates.map((candidate) => [candidate.name, []]));
    const failures = new Map<string, number>(candidates.map((candidate) => [candidate.name, 0]));
    options.log(`x11: time to first xeyes window, ${options.runs} runs each (rotating order, 2 warm-up)`);
    for (let index = -2; index < options.runs; index += 1) {
      for (let k = 0; k < candidates.length; k += 1) {
        const candidate = candidates[(k + Math.max(index, 0)) % candidates.length];
        if (candidate === undefined) continue;
        const ms = await firstWindow(fixture, watcher, candidate.argv);
        if (index < 0) continue;
        if (ms === undefined) failures.set(candidate.name, (failures.get(candidate.name) ?? 0) + 1);
        else samples.get(candidate.name)?.push(ms);
      }
    }
    const firstWindowRows = candidates.map((candidate) => ({ name: candidate.name, ms: summarize(samples.get(candidate.name) ?? []), failures: failures.get(candidate.name) ?? 0 }));

    // x11perf's rate moves with whatever else the 2 cores do for a few seconds: several rounds,
    // ssh -X and ebp alternating within each, and the median per path and test.
    const rounds = options.runs >= 20 ? 3 : 1;
    options.log(`x11: x11perf ${X11PERF_TESTS.join(' ')} direct, through ssh -X and through ebp, ${rounds} round(s)`);
    const perfArgs = ['-repeat', '2', '-time', '2', ...X11PERF_TESTS];
    const runs = { direct: [] as Map<string, number>[], ssh: [] as Map<string, number>[], ebp: [] as Map<string, number>[] };
    for (let round = 0; round < rounds; round += 1) {
      const viaSsh = (): void => { runs.ssh.push(parseX11perf(must([...fixture.ssh(), 'x11perf', ...perfArgs], 'x11perf (ssh -X)', { env: fixture.env, timeoutMs: 60_000 }))); };
      const viaEbp = (): void => { runs.ebp.push(parseX11perf(must(fixture.ebpArgs('B', 'run', peer, 'x11perf', ...perfArgs), 'x11perf (ebp)', { env: fixture.env, timeoutMs: 60_000 }))); };
      runs.direct.push(parseX11perf(must(['x11perf', ...perfArgs], 'x11perf (direct)', { env: fixture.env, timeoutMs: 60_000 })));
      if (round % 2 === 0) { viaSsh(); viaEbp(); } else { viaEbp(); viaSsh(); }
    }
    const medianOf = (maps: readonly Map<string, number>[], test: string): number | undefined => {
      const values = maps.map((map) => map.get(test)).filter((value): value is number => value !== undefined);
      return values.length === 0 ? undefined : summarize(values).median;
    };
    const names = [...new Set([...runs.direct, ...runs.ssh, ...runs.ebp].flatMap((map) => [...map.keys()]))];
    const perfRows = names.map((test) => ({ test, direct: medianOf(runs.direct, test), ssh: medianOf(runs.ssh, test), ebp: medianOf(runs.ebp, test) }));
    notes.push(`x11perf -repeat 2 -time 2, ${rounds} round(s) with ssh -X and ebp alternating; the median of x11perf's summary lines (ops/s) per path and test; untrusted cookies on both forwarded paths`);
    return { runs: options.runs, firstWindow: firstWindowRows, x11perf: perfRows, notes, durationS: round((performance.now() - began) / 1000, 1) };
  } finally {
    watcher?.close();
    process.off('exit', onExit);
    fixture.cleanUp();
  }
}

const ms = (value: number): string => (Number.isNaN(value) ? 'n/a' : `${value.toFixed(1)} ms`);
const ratio = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? 'n/a' : `${value.toFixed(2)}x`);

export function x11SummaryRows(result: X11BenchResult): string[][] {
  if (result.skipped !== undefined) return [['x11. X11 forwarding', 'skipped', result.skipped, '', '', '']];
  const find = (name: string): FirstWindowRow | undefined => result.firstWindow.find((row) => row.name.startsWith(name));
  const fresh = find('ssh -X (fresh');
  const rows: string[][] = [];
  for (const name of ['ebp run (warm', 'ebp run (cold'] as const) {
    const row = find(name);
    if (row === undefined || fresh === undefined) continue;
    const value = row.ms.median / fresh.ms.median;
    rows.push([`x11. first xeyes window, ${row.name}, median (N=${row.ms.n})`, ms(row.ms.median), `ssh -X fresh ${ms(fresh.ms.median)}`, ratio(value), `≤ ${X11_TARGETS.firstWindow}x`, value <= X11_TARGETS.firstWindow ? 'met' : 'missed']);
  }
  for (const perf of result.x11perf) {
    if (perf.ebp === undefined || perf.ssh === undefined) continue;
    const value = perf.ebp / perf.ssh;
    rows.push([`x11. x11perf ${perf.test} (ops/s)`, perf.ebp.toFixed(0), `ssh -X ${perf.ssh.toFixed(0)}`, ratio(value), `≥ ${X11_TARGETS.x11perf}x`, value >= X11_TARGETS.x11perf ? 'met' : 'missed']);
  }
  return rows;
}

export function x11Detail(result: X11BenchResult): string {
  if (result.skipped !== undefined) return `X11: skipped (${result.skipped}).`;
  const lines = ['X11 forwarding: time to first xeyes window (spawn → MapNotify):', '', '| path | median | p90 | min | failures |', '|---|---|---|---|---|'];
  for (const row of result.firstWindow) lines.push(`| ${row.name} | ${ms(row.ms.median)} | ${ms(row.ms.p90)} | ${ms(row.ms.min)} | ${row.failures} |`);
  lines.push('', '| x11perf test | direct | ssh -X | ebp | ebp / ssh -X |', '|---|---|---|---|---|');
  for (const perf of result.x11perf) {
    lines.push(`| ${perf.test} | ${perf.direct?.toFixed(0) ?? 'n/a'} | ${perf.ssh?.toFixed(0) ?? 'n/a'} | ${perf.ebp?.toFixed(0) ?? 'n/a'} | ${ratio(perf.ebp === undefined || perf.ssh === undefined ? undefined : perf.ebp / perf.ssh)} |`);
  }
  lines.push('', ...result.notes.map((note) => `- ${note}`));
  return lines.join('\n');
}
