// cgroup v2 backend against the fake tree in test/data/cgroup-v2 (copied to a temp dir per test):
// detection, limits landing in the right files, stats parsing, killAll and close.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { EbpError } from '../../src/lib/errors.js';
import { chownValue, writeValueAsync } from '../../src/sandbox/cgroup/files.js';
import { detectCgroups, type CgroupManager } from '../../src/sandbox/cgroup/index.js';

// dist/test/unit/ → repository root → test/data
const FIXTURE = fileURLToPath(new URL('../../../test/data/cgroup-v2/', import.meta.url));
const OWN = '0::/user.slice/ebp.service\n';
const LIMITS = { memoryBytes: 256 * 1024 * 1024, pids: 64, cpus: 1.5, ioWeight: 200 } as const;

function mountLine(mountPoint: string, root = '/'): string {
  return `35 24 0:30 ${root} ${mountPoint} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n`;
}

async function text(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

async function gone(path: string): Promise<boolean> {
  try {
    await stat(path);
    return false;
  } catch {
    return true;
  }
}

function isCode(code: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof EbpError, `expected EbpError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

void describe('cgroup v2 (fake tree)', () => {
  let tmp = '';
  let base = '';

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'ebp-cgroup-v2-'));
    await cp(FIXTURE, tmp, { recursive: true });
    base = join(tmp, 'user.slice', 'ebp.service');
  });

  afterEach(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  async function manager(): Promise<CgroupManager> {
    const detection = await detectCgroups({ root: tmp, procSelfCgroup: OWN, mountInfo: mountLine(tmp) });
    assert.ok(detection.ok, detection.ok ? '' : `${detection.reason} / ${detection.fix}`);
    return detection.manager;
  }

  void it('detects a delegated v2 cgroup and describes it', async () => {
    const m = await manager();
    assert.equal(m.version, 'v2');
    assert.deepEqual(m.describe(), { base, controllers: ['memory', 'pids', 'cpu', 'io'] });
    // Detection alone changes nothing on disk.
    assert.equal(await text(join(base, 'cgroup.subtree_control')), '');
    assert.ok(await gone(join(base, 'ebp-daemon')));
  });

  void it('creates a sandbox: daemon parked in a leaf, controllers enabled, limits written', async () => {
    const m = await manager();
    const cg = await m.create('web-1', LIMITS);
    assert.equal(cg.version, 'v2');
    assert.equal(cg.name, 'web-1');
    // The kernel takes one pid per write; the fake file keeps only the last one.
    assert.equal(await text(join(base, 'ebp-daemon', 'cgroup.procs')), '4243');
    assert.equal(await text(join(base, 'cgroup.subtree_control')), '+memory +pids +cpu +io');
    const dir = join(base, 'ebp-web-1');
    assert.equal(await text(join(dir, 'memory.max')), String(256 * 1024 * 1024));
    assert.equal(await text(join(dir, 'memory.swap.max')), '0');
    assert.equal(await text(join(dir, 'memory.oom.group')), '1');
    assert.equal(await text(join(dir, 'pids.max')), '64');
    assert.equal(await text(join(dir, 'cpu.max')), '150000 100000');
    assert.equal(await text(join(dir, 'io.weight')), '200');

    // Above any pid_max, so nothing real could ever be signalled by mistake.
    await cg.addProcess(99_999_999);
    assert.equal(await text(join(dir, 'cgroup.procs')), '99999999');
    await assert.rejects(cg.addProcess(0), isCode('USAGE'));
    await assert.rejects(cg.addProcess(1.5), isCode('USAGE'));
    // v2 moves whole processes only: the runner's launcher is moved in by pid, not by itself.
    assert.equal('selfJoinFiles' in cg, false);
    // No kernel here: play its part and report the process gone before close() waits for that.
    await writeFile(join(dir, 'cgroup.procs'), '');

    await cg.close();
    assert.ok(await gone(dir));
    await cg.close(); // idempotent
  });

  void it('leaves io.weight and cpu.max alone when not asked for or not delegated', async () => {
    await writeFile(join(base, 'cgroup.controllers'), 'memory pids\n');
    const m = await manager();
    assert.deepEqual(m.describe().controllers, ['memory', 'pids']);
    const cg = await m.create('small', { memoryBytes: 1 << 20, pids: 1, cpus: 0.001 });
    assert.equal(await text(join(base, 'cgroup.subtree_control')), '+memory +pids');
    const files = await readdir(join(base, 'ebp-small'));
    assert.ok(!files.includes('cpu.max'));
    assert.ok(!files.includes('io.weight'));
    await cg.close();
  });

  void it('a second manager (daemon restart) reuses the leaf and does not re-enable controllers', async () => {
    const first = await (await manager()).create('a', LIMITS);
    await writeFile(join(base, 'cgroup.subtree_control'), 'cpu io memory pids\n');
    const second = await (await manager()).create('b', LIMITS);
    assert.equal(await text(join(base, 'cgroup.subtree_control')), 'cpu io memory pids');
    await assert.rejects((await manager()).create('a', LIMITS), isCode('STATE_INVALID'));
    await first.close();
    await second.close();
  });

  void it('reads stats from memory.current/peak/events, cpu.stat and pids.current', async () => {
    const cg = await (await manager()).create('stats', LIMITS);
    assert.deepEqual(await cg.stats(), {
      memoryCurrentBytes: 0,
      memoryPeakBytes: 0,
      cpuUsageUsec: 0,
      oomKills: 0,
      pids: 0,
    });
    const dir = join(base, 'ebp-stats');
    await writeFile(join(dir, 'memory.current'), '1048576\n');
    await writeFile(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 1\n');
    await writeFile(join(dir, 'cpu.stat'), 'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n');
    await writeFile(join(dir, 'pids.current'), '3\n');
    // Without memory.peak (before Linux 5.19) the peak is at least the current use.
    assert.deepEqual(await cg.stats(), {
      memoryCurrentBytes: 1048576,
      memoryPeakBytes: 1048576,
      cpuUsageUsec: 123456,
      oomKills: 2,
      pids: 3,
    });
    await writeFile(join(dir, 'memory.peak'), '9999999\n');
    assert.equal((await cg.stats()).memoryPeakBytes, 9999999);
    await cg.close();
  });

  void it('killAll returns once cgroup.events says populated 0', async () => {
    const cg = await (await manager()).create('kill', LIMITS);
    const dir = join(base, 'ebp-kill');
    await writeFile(join(dir, 'cgroup.procs'), '');
    await writeFile(join(dir, 'cgroup.events'), 'populated 0\nfrozen 0\n');
    await writeFile(join(dir, 'cgroup.kill'), '');
    const started = Date.now();
    await cg.killAll();
    assert.ok(Date.now() - started < 1000);
    // Nothing to kill, so cgroup.kill was not written.
    assert.equal(await text(join(dir, 'cgroup.kill')), '');
    await cg.close();
    assert.ok(await gone(dir));
  });

  void it('rejects hostile names before touching the tree', async () => {
    const m = await manager();
    const before = await readdir(base);
    for (const name of ['', '..', '../etc', 'a/b', 'a.b', 'a b', 'x'.repeat(65), 'ünï', 'a\nb', 'daemon']) {
      await assert.rejects(m.create(name, LIMITS), isCode('USAGE'), JSON.stringify(name));
    }
    assert.deepEqual(await readdir(base), before);
  });

  void it('rejects nonsensical limits', async () => {
    const m = await manager();
    const bad = [
      { ...LIMITS, memoryBytes: 0 },
      { ...LIMITS, memoryBytes: 1.5 },
      { ...LIMITS, pids: -1 },
      { ...LIMITS, cpus: 0 },
      { ...LIMITS, cpus: Number.NaN },
      { ...LIMITS, ioWeight: 0 },
      { ...LIMITS, ioWeight: 10001 },
    ];
    for (const limits of bad) await assert.rejects(m.create('ok', limits), isCode('USAGE'), JSON.stringify(limits));
  });

  void it('is not usable when memory is not delegated, and says how to fix it', async () => {
    await writeFile(join(base, 'cgroup.controllers'), 'cpu io pids\n');
    const detection = await detectCgroups({ root: tmp, procSelfCgroup: OWN, mountInfo: mountLine(tmp) });
    assert.equal(detection.ok, false);
    assert.match(detection.reason, /memory/);
    assert.match(detection.fix, /Delegate=yes/);
  });

  void it('is not usable without a "0::" line or without a cgroup2 mount', async () => {
    const noLine = await detectCgroups({ root: tmp, procSelfCgroup: '4:memory:/\n', mountInfo: mountLine(tmp) });
    assert.equal(noLine.ok, false);
    const noMount = await detectCgroups({ root: tmp, procSelfCgroup: OWN, mountInfo: '' });
    assert.equal(noMount.ok, false);
    assert.match(noMount.reason, /no usable cgroup hierarchy/);
  });

  void it('falls back to v2 when v1 is preferred but not there', async () => {
    const detection = await detectCgroups({ root: tmp, procSelfCgroup: OWN, mountInfo: mountLine(tmp), prefer: 'v1' });
    assert.ok(detection.ok);
    assert.equal(detection.manager.version, 'v2');
  });

  void it('maps the own path through a mount of a sub-tree (cgroup namespace, bind mount)', async () => {
    const detection = await detectCgroups({
      root: tmp,
      procSelfCgroup: OWN,
      mountInfo: mountLine(join(tmp, 'user.slice'), '/user.slice'),
    });
    assert.ok(detection.ok);
    assert.equal(detection.manager.describe().base, base);
  });
});

void describe('cgroup control files', () => {
  void it('a file that cannot be given to the sandbox user, or written through the thread pool, is an error naming it', async () => {
    const missing = join(tmpdir(), `ebp-no-such-cgroup-${process.pid}`, 'tasks');
    assert.throws(() => { chownValue(missing, 65534, 65534); }, (error: unknown) => {
      assert.ok(error instanceof EbpError);
      assert.equal(error.code, 'CGROUP_UNAVAILABLE');
      assert.match(error.message, new RegExp(`give to 65534:65534.*${missing}.*ENOENT`));
      assert.match(error.hint ?? '', /ebp doctor/);
      return true;
    });
    await assert.rejects(writeValueAsync(missing, '0'), (error: unknown) => error instanceof EbpError && error.message.includes(missing) && /ENOENT/.test(error.message));
  });
});
