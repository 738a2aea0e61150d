// Leak test: many sandboxes in a row from one process and one engine, then a before/after
// comparison of everything a sandbox could leave behind on the host: processes of the sandbox
// uid, slirp4netns, cgroup directories, mounts, /tmp entries, bwrap's base directories and our own
// file descriptors. Each detector is first shown to see a live sandbox (a positive control), so a
// check that passes is a real "nothing left", not a detector that looks at the wrong place.
//
// Other engineers (and CI jobs) may run sandboxes on the same host at the same time. Every check
// is therefore attributed: our sandboxes carry a tag in their environment, and we know every
// sandbox id (cgroup names are `ebp-s-<id>`); foreign leftovers are reported, never blamed on us.
//
// Needs root (sandboxes then run as the ebp-sandbox system user, so their processes can be told
// apart from ours). EBP_LEAK_COUNT overrides the number of sandboxes (default 1000).
// EBP_LEAK_INJECT=1 plants one leak of every kind before the "after" snapshot: every check must
// then fail (a self-test of the detectors; the after hook removes the planted leaks).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { createEngine, type SandboxEngine } from '../../src/sandbox/engine.js';
import type { SandboxPolicy } from '../../src/sandbox/policy.js';
import { buildPolicy } from '../../src/sandbox/request.js';
import { startSandbox, type SandboxExit, type SandboxHandle } from '../../src/sandbox/runner.js';

const COUNT = leakCount();
const INJECT = process.env['EBP_LEAK_INJECT'] === '1';
const NET_EVERY = 100;
const NET_AT = 50;
const DAEMON_AT = 99;
/** Generous: a plain sandbox takes ~20-60 ms here, a --net one ~100-300 ms. */
const TIMEOUT_MS = Math.max(240_000, COUNT * 200);

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TAG_NAME = 'EBP_LEAK_TAG';
const TAG = `leak-${process.pid}-${randomBytes(4).toString('hex')}`;

function leakCount(): number {
  const text = process.env['EBP_LEAK_COUNT'];
  if (text === undefined || text === '') return 1000;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`EBP_LEAK_COUNT must be a positive integer, not "${text}"`);
  return value;
}

function skipReason(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root: sandboxes must run as the ebp-sandbox user to be told apart from the test';
  return undefined;
}
const SKIP = skipReason();

// ---------------------------------------------------------------------------------------------
// Detectors. Each reads the host directly (not through the code under test).

interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly uid: number;
  readonly name: string;
  readonly state: string;
  readonly tagged: boolean;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Every process on the host: real uid, parent, name, and whether its environment carries TAG. */
function listProcesses(): ProcInfo[] {
  const result: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = readOrEmpty(`/proc/${entry}/status`);
    if (status === '') continue; // gone meanwhile
    const field = (key: string): string => new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
    const environ = readOrEmpty(`/proc/${entry}/environ`);
    result.push({
      pid: Number(entry),
      ppid: Number(field('PPid')),
      uid: Number(field('Uid').split(/\s+/)[0]),
      name: field('Name'),
      state: field('State').slice(0, 1),
      tagged: environ.split('\0').includes(`${TAG_NAME}=${TAG}`),
    });
  }
  return result;
}

/** A directory listing that must succeed: the check is only meaningful for a real directory. */
function listDir(path: string): string[] {
  assert.ok(statSync(path).isDirectory(), `${path} is not a directory`);
  return readdirSync(path);
}

function listDirIfAny(path: string): string[] | undefined {
  try {
    return readdirSync(path);
  } catch {
    return undefined;
  }
}

interface MountLine {
  readonly mountPoint: string;
  readonly root: string;
  readonly fsType: string;
  readonly source: string;
  readonly superOptions: readonly string[];
}

function mountInfo(): MountLine[] {
  const mounts: MountLine[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (line === '') continue;
    const [left, right] = line.split(' - ');
    const fields = (left ?? '').split(' ');
    const tail = (right ?? '').split(' ');
    const unescape = (text: string): string => text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    mounts.push({
      root: unescape(fields[3] ?? ''),
      mountPoint: unescape(fields[4] ?? ''),
      fsType: tail[0] ?? '',
      source: tail[1] ?? '',
      superOptions: (tail[2] ?? '').split(','),
    });
  }
  return mounts;
}

function mountKey(mount: MountLine): string {
  return `${mount.mountPoint} ${mount.fsType} ${mount.source} ${mount.root}`;
}

/**
 * Where sandbox cgroups can live, found independently of the engine: `<mount>/ebp` and
 * `<mount>/<own cgroup>/ebp` for every cgroup (v1) and cgroup2 mount. Only existing ones count.
 */
function cgroupBases(): string[] {
  const own = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (match?.[1] === undefined || match[2] === undefined) continue;
    for (const controller of match[1] === '' ? ['<unified>'] : match[1].split(',')) own.set(controller, match[2]);
  }
  const bases = new Set<string>();
  for (const mount of mountInfo()) {
    if (mount.fsType !== 'cgroup' && mount.fsType !== 'cgroup2') continue;
    bases.add(join(mount.mountPoint, 'ebp'));
    const controllers = mount.fsType === 'cgroup2' ? ['<unified>'] : mount.superOptions.filter((option) => own.has(option));
    for (const controller of controllers) {
      const path = own.get(controller);
      if (path === undefined || !(path === mount.root || path.startsWith(`${mount.root === '/' ? '' : mount.root}/`))) continue;
      bases.add(join(mount.mountPoint, path.slice(mount.root === '/' ? 0 : mount.root.length), 'ebp'));
    }
  }
  return [...bases].filter((base) => {
    try {
      return statSync(base).isDirectory() && statSync(join(base, 'cgroup.procs')).isFile();
    } catch {
      return false;
    }
  }).sort();
}

/** Every `ebp-s-*` sandbox cgroup directory under the bases, as full paths. */
function sandboxCgroupDirs(bases: readonly string[]): string[] {
  return bases.flatMap((base) => listDir(base).filter((name) => name.startsWith('ebp-s-')).map((name) => join(base, name)));
}

function idOf(cgroupDir: string): string {
  return cgroupDir.slice(cgroupDir.lastIndexOf('/ebp-s-') + '/ebp-s-'.length);
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function bwrapBaseDirs(uid: number): string[] {
  return [`/tmp/.bubblewrap-${uid}`, `/run/user/${uid}/.bubblewrap`];
}

interface TmpEntry {
  readonly name: string;
  readonly uid: number;
}

function tmpEntries(): TmpEntry[] {
  return listDir('/tmp').flatMap((name) => {
    try {
      return [{ name, uid: statSync(join('/tmp', name)).uid }];
    } catch {
      return []; // removed meanwhile (someone else's temp file)
    }
  });
}

interface Snapshot {
  readonly processes: ProcInfo[];
  readonly cgroupDirs: string[];
  readonly mounts: string[];
  readonly tmp: TmpEntry[];
  readonly bwrapBases: Map<string, string[] | undefined>;
}

function snapshot(uid: number, bases: readonly string[]): Snapshot {
  return {
    processes: listProcesses(),
    cgroupDirs: sandboxCgroupDirs(bases),
    // Network-namespace handles (/run/netns) belong to other tests' test LANs, never to a sandbox.
    mounts: mountInfo().filter((mount) => !mount.mountPoint.startsWith('/run/netns/')).map(mountKey),
    tmp: tmpEntries(),
    bwrapBases: new Map(bwrapBaseDirs(uid).map((dir) => [dir, listDirIfAny(dir)])),
  };
}

// Processes we are responsible for: our tagged sandboxes, and anything whose parent is us.
function ourLeftovers(processes: readonly ProcInfo[], sandboxUid: number): ProcInfo[] {
  return processes.filter((proc) => proc.pid !== process.pid && ((proc.uid === sandboxUid && proc.tagged) || proc.ppid === process.pid));
}

/**
 * bwrap's monitor exits as soon as its pid-1 init reports the exit status, without reaping it:
 * the init becomes an orphan zombie of the host's init (or the nearest subreaper) for a moment.
 * A zombie has no environment to carry our tag, so these are counted by shape: new since the
 * start, the sandbox uid, a bwrap, a zombie, parent pid 1.
 */
function orphanZombies(processes: readonly ProcInfo[], sandboxUid: number, before: ReadonlySet<number>): ProcInfo[] {
  return processes.filter((proc) => proc.state === 'Z' && proc.uid === sandboxUid && proc.name === 'bwrap' && proc.ppid === 1 && !before.has(proc.pid));
}

/** slirp4netns processes that are ours: our children, or orphans (reparented to pid 1). */
function ourSlirps(processes: readonly ProcInfo[], before: ReadonlySet<number>): ProcInfo[] {
  return processes.filter((proc) => proc.name === 'slirp4netns' && !before.has(proc.pid) && (proc.ppid === process.pid || proc.ppid === 1));
}

const gc = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

async function settle(): Promise<void> {
  for (let round = 0; round < 3; round += 1) {
    gc();
    await delay(20);
  }
}

/** Poll until `check` returns an empty list (teardown of the last sandbox may still be running). */
async function eventually<T>(check: () => T[], ms = 3000): Promise<T[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = check();
    if (found.length === 0 || Date.now() > deadline) return found;
    await delay(50);
  }
}

function describeProcs(list: readonly ProcInfo[]): string {
  return list.map((proc) => `${proc.pid}(${proc.name}, uid ${proc.uid}, ppid ${proc.ppid}, state ${proc.state})`).join(', ');
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? Number.NaN;
}

// ---------------------------------------------------------------------------------------------

void describe(`sandbox leaks (${COUNT} sandboxes)`, { skip: SKIP ?? false, timeout: TIMEOUT_MS + 60_000 }, () => {
  let engine: SandboxEngine;
  let sandboxUid: number;
  let bases: string[];
  let initial: Snapshot;
  let final: Snapshot;
  let fdBefore: number;
  let fdAfter: number;
  const ids = new Set<string>();
  const live: SandboxHandle[] = [];
  let runFinished = false;
  const planted: (() => void)[] = [];

  /** EBP_LEAK_INJECT=1: one leak of each kind the checks look for. */
  const plantLeaks = async (): Promise<void> => {
    live.push(await start(policyFor(['sleep', '600'], true)));
    const fd = openSync('/dev/null', 'r');
    planted.push(() => { closeSync(fd); });
    const file = join('/tmp', `ebp-leak-planted-${TAG}`);
    writeFileSync(file, '');
    chownSync(file, sandboxUid, engine.identity.gid);
    planted.push(() => { rmSync(file, { force: true }); });
    const dir = mkdtempSync('/tmp/ebp-leak-mount-');
    planted.push(() => { rmSync(dir, { recursive: true, force: true }); });
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1M', 'ebp-leak', dir]).status, 0, 'cannot plant a mount');
    planted.push(() => { spawnSync('umount', [dir]); });
  };

  const policyFor = (command: readonly string[], network: boolean): SandboxPolicy => {
    const base = buildPolicy({ command, network }, engine.identity);
    // The tag marks every process of our sandboxes (bwrap passes its environment on).
    return { ...base, env: { ...base.env, [TAG_NAME]: TAG } };
  };

  const start = async (policy: SandboxPolicy): Promise<SandboxHandle> => {
    const handle = await startSandbox(policy, { engine, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
    ids.add(handle.id);
    return handle;
  };

  const run = async (policy: SandboxPolicy): Promise<{ exit: SandboxExit; stderr: string }> => {
    const handle = await start(policy);
    let stderr = '';
    handle.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    return { exit: await handle.exited, stderr };
  };

  before(async () => {
    const setup = spawnSync(process.execPath, [join(repoRoot, 'bin', 'ebp'), 'setup'], { encoding: 'utf8' });
    assert.equal(setup.status, 0, `ebp setup failed: ${setup.stderr}${setup.stdout}`);
    engine = await createEngine();
    assert.ok(engine.identity.switchUser, 'as root, sandboxes must run as the sandbox user');
    sandboxUid = engine.identity.uid;
    assert.notEqual(sandboxUid, 0);
    assert.ok(engine.cgroups !== undefined, `cgroups must be usable for this test: ${engine.cgroupProblem ?? ''}`);

    // The "before" of everything but the fds: taken before our first sandbox.
    const preBases = cgroupBases();
    initial = snapshot(sandboxUid, preBases);

    // Warm-up: the engine creates its cgroup bases lazily; libuv its signal pipe on first spawn.
    const warm = await run(policyFor(['true'], false));
    assert.deepEqual([warm.exit.code, warm.exit.reason], [0, 'exited'], warm.stderr);
    bases = cgroupBases();
    assert.ok(bases.length >= 1, 'no ebp cgroup base directory found');
    const engineBases = [...engine.cgroups.describe().base.matchAll(/=(\S+)/g)].map((match) => match[1] ?? '');
    assert.ok(engineBases.length >= 1, `cannot read the engine's cgroup bases from "${engine.cgroups.describe().base}"`);
    for (const base of engineBases) assert.ok(bases.includes(base), `engine base ${base} not among the discovered ${bases.join(', ')}`);
    // Bases the warm-up created (root nests them under its own cgroup) are listed now; the
    // warm-up's own directory is not "before": leftovers are attributed by id in the end anyway.
    initial = { ...initial, cgroupDirs: sandboxCgroupDirs(bases).filter((dir) => !ids.has(idOf(dir))) };

    // Positive controls: a live sandbox (with NAT) is seen by every detector that can see one.
    await settle();
    const fdIdle = fdCount();
    assert.ok(fdIdle > 3, `/proc/self/fd lists only ${fdIdle} entries`);
    const control = await start(policyFor(['sleep', '600'], true));
    live.push(control);
    try {
      // The sandbox reports "started" just before its shim execs the command: give the exec a
      // moment on a loaded machine.
      let procs = listProcesses();
      for (let tries = 0; tries < 100 && !ourLeftovers(procs, sandboxUid).some((proc) => proc.name === 'sleep'); tries += 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        procs = listProcesses();
      }
      assert.ok(procs.some((proc) => proc.pid === process.pid), 'the process scan does not see the test itself');
      const mine = ourLeftovers(procs, sandboxUid);
      assert.ok(mine.some((proc) => proc.name === 'bwrap') && mine.some((proc) => proc.name === 'sleep'), `the process detector misses a live sandbox: ${describeProcs(mine)}`);
      assert.equal(ourSlirps(procs, new Set()).length, 1, 'the slirp4netns detector misses a live --net sandbox');
      const dirs = sandboxCgroupDirs(bases).filter((dir) => dir.endsWith(`/ebp-s-${control.id}`));
      assert.deepEqual(dirs.sort(), engineBases.map((base) => join(base, `ebp-s-${control.id}`)).sort(), 'the cgroup detector misses the live sandbox\'s directories');
      assert.ok(fdCount() > fdIdle, 'the fd count does not grow while a sandbox runs');
      const probe = join('/tmp', `ebp-leak-probe-${TAG}`);
      writeFileSync(probe, '');
      chownSync(probe, sandboxUid, engine.identity.gid);
      try {
        assert.ok(tmpEntries().some((entry) => entry.name === `ebp-leak-probe-${TAG}` && entry.uid === sandboxUid), 'the /tmp detector misses a file of the sandbox user');
      } finally {
        rmSync(probe, { force: true });
      }
      const mounts = mountInfo();
      assert.ok(mounts.some((mount) => mount.mountPoint === '/') && mounts.some((mount) => mount.fsType === 'proc'), 'mountinfo parsed to nonsense');
    } finally {
      const stopped = await control.stop(500);
      live.splice(live.indexOf(control), 1);
      assert.equal(stopped.reason, 'stopped');
    }
    await settle();
    fdBefore = fdCount();
    assert.ok(fdBefore > 3);
  });

  after(async () => {
    // Whatever failed: nothing of ours keeps running.
    await Promise.allSettled(live.map((handle) => handle.stop(200)));
    for (const undo of planted.reverse()) undo();
  });

  void it(`runs ${COUNT} sandboxes one after another, plain, --net and a double-forking daemon`, { timeout: TIMEOUT_MS }, async (t) => {
    const plain = policyFor(['true'], false);
    const net = policyFor(['grep', '-q', 'tap0', '/proc/net/dev'], true);
    const daemon = policyFor(['sh', '-c', '(sleep 300 &); exit 0'], false);
    const times: number[] = [];
    const kinds = { plain: 0, net: 0, daemon: 0 };
    for (let index = 0; index < COUNT; index += 1) {
      const phase = index % NET_EVERY;
      // Fewer than NET_EVERY sandboxes (a quick run): still one of each kind.
      const small = COUNT < NET_EVERY;
      const kind = (small ? index === Math.floor(COUNT / 2) : phase === NET_AT) ? 'net'
        : (small ? index === COUNT - 1 : phase === DAEMON_AT) ? 'daemon' : 'plain';
      const policy = kind === 'net' ? net : kind === 'daemon' ? daemon : plain;
      const began = performance.now();
      const { exit, stderr } = await run(policy);
      if (kind === 'plain') times.push(performance.now() - began);
      kinds[kind] += 1;
      assert.deepEqual([exit.code, exit.reason], [0, 'exited'], `sandbox ${index} (${kind}): ${exit.message ?? ''} ${stderr}`);
    }
    runFinished = true;
    times.sort((a, b) => a - b);
    t.diagnostic(`${kinds.plain} plain, ${kinds.net} --net, ${kinds.daemon} daemon; plain spawn-to-exit median ${percentile(times, 0.5).toFixed(1)} ms, p90 ${percentile(times, 0.9).toFixed(1)} ms, max ${percentile(times, 1).toFixed(1)} ms`);
    assert.equal(ids.size, COUNT + 2, 'every sandbox has its own id');

    if (INJECT) await plantLeaks();
    // The "after", once the last teardown had its chance.
    await settle();
    fdAfter = fdCount();
    final = snapshot(sandboxUid, bases);
  });

  const afterRun = (): Snapshot => {
    assert.ok(runFinished, 'the sandbox run did not finish; nothing to compare');
    return final;
  };

  void it('leaves no process of the sandbox user behind (and no child or zombie of ours)', async (t) => {
    const snap = afterRun();
    const left = await eventually(() => ourLeftovers(listProcesses(), sandboxUid));
    assert.deepEqual(describeProcs(left), '', 'processes left over');
    const beforePids = new Set(initial.processes.map((proc) => proc.pid));
    // The orphaned bwrap inits seen at the end must be reaped by the host's init soon after.
    const zombies = new Set(orphanZombies(snap.processes, sandboxUid, beforePids).map((proc) => proc.pid));
    const unreaped = await eventually(() => orphanZombies(listProcesses(), sandboxUid, beforePids).filter((proc) => zombies.has(proc.pid)), 15_000);
    assert.deepEqual(describeProcs(unreaped), '', 'orphaned bwrap zombies not reaped by the host init within 15 s');
    if (zombies.size > 0) t.diagnostic(`${zombies.size} orphaned bwrap zombie(s) of pid 1 at the end, all reaped since`);
    const ignore = new Set([...beforePids, ...zombies]);
    const foreign = listProcesses().filter((proc) => proc.uid === sandboxUid && !ignore.has(proc.pid));
    if (foreign.length > 0) t.diagnostic(`not ours (other users of this host): ${describeProcs(foreign)}`);
  });

  void it('leaves no slirp4netns behind', async () => {
    afterRun();
    const beforePids = new Set(initial.processes.filter((proc) => proc.name === 'slirp4netns').map((proc) => proc.pid));
    const left = await eventually(() => ourSlirps(listProcesses(), beforePids));
    assert.deepEqual(describeProcs(left), '', 'slirp4netns processes left over');
  });

  void it('removes every sandbox cgroup directory', (t) => {
    const snap = afterRun();
    const ours = snap.cgroupDirs.filter((dir) => ids.has(idOf(dir)));
    const foreign = snap.cgroupDirs.filter((dir) => !initial.cgroupDirs.includes(dir) && !ours.includes(dir));
    assert.equal(ours.length, 0, `cgroup directories of our sandboxes left over: ${ours.join(', ')}`);
    if (foreign.length > 0) t.diagnostic(`new ebp-s-* directories that are not ours: ${foreign.join(', ')}`);
    t.diagnostic(`bases: ${bases.join(', ')}`);
  });

  void it('leaves the mount table unchanged', (t) => {
    const snap = afterRun();
    assert.ok(initial.mounts.length > 0, 'no mounts were read before');
    const added = snap.mounts.filter((mount) => !initial.mounts.includes(mount));
    const removed = initial.mounts.filter((mount) => !snap.mounts.includes(mount));
    // A sandbox never mounts FUSE on the host; someone else's sshfs test may.
    const relevant = (list: string[]): string[] => list.filter((mount) => !/ fuse(\.\S+)? /.test(mount));
    if (added.length + removed.length > relevant(added).length + relevant(removed).length) {
      t.diagnostic(`ignored FUSE mount changes: +${added.join('; ')} -${removed.join('; ')}`);
    }
    assert.deepEqual({ added: relevant(added), removed: relevant(removed) }, { added: [], removed: [] });
  });

  void it('leaves nothing in /tmp or bwrap\'s base directories', (t) => {
    const snap = afterRun();
    const beforeNames = new Set(initial.tmp.map((entry) => entry.name));
    const added = snap.tmp.filter((entry) => !beforeNames.has(entry.name));
    const suspicious = added.filter((entry) => entry.uid === sandboxUid || /bwrap|bubblewrap|newroot/.test(entry.name));
    assert.deepEqual(suspicious.map((entry) => entry.name), [], 'new /tmp entries of the sandbox user or bwrap');
    if (added.length > 0) t.diagnostic(`other new /tmp entries (not the sandbox user's): ${added.map((entry) => entry.name).join(', ')}`);
    for (const [dir, listing] of snap.bwrapBases) {
      if (listing === undefined) continue;
      const was = initial.bwrapBases.get(dir);
      assert.deepEqual(listing, was ?? [], `${dir} changed`);
      t.diagnostic(`${dir} exists, ${listing.length} entries`);
    }
  });

  void it('closes every file descriptor it opened', async () => {
    afterRun();
    let now = fdAfter;
    // Handles closed during the last teardown are released a tick later.
    for (let round = 0; round < 20 && now !== fdBefore; round += 1) {
      await settle();
      now = fdCount();
    }
    assert.equal(now, fdBefore, `open descriptors: ${fdBefore} before, ${now} after ${COUNT} sandboxes`);
  });
});
