// cgroup v1 backend for real: limits in the kernel's files, processes moved in, OOM kills and the
// pids limit enforced, killAll/close, and `ebp setup`'s delegation to an unprivileged user.
// Needs root and cgroup v1 controllers; skipped otherwise.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rmdir, stat } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { EbpError } from '../../src/lib/errors.js';
import { FD, SELF_JOINING_LAUNCHER_SHIM } from '../../src/sandbox/bwrap-args.js';
import { detectCgroups, prepareCgroups, type CgroupManager } from '../../src/sandbox/cgroup/index.js';

const MOUNTS = '/sys/fs/cgroup';
const CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'blkio', 'freezer'] as const;
const NOBODY = 65534;
const MiB = 1024 * 1024;

async function skipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (cgroup v1 directories are root-owned)';
  const detection = await detectCgroups({ prefer: 'v1' });
  if (!detection.ok) return `cgroups not usable: ${detection.reason}`;
  if (detection.manager.version !== 'v1') return 'this machine uses cgroup v2, not v1';
  return undefined;
}
const SKIP = await skipReason();

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function text(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

/** controller → cgroup directory of a process, from /proc/<pid>/cgroup (all mounts here are at "/"). */
async function cgroupDirsOf(pid: number): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
  for (const line of (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers === undefined || path === undefined) continue;
    for (const controller of controllers.split(',')) {
      if ((CONTROLLERS as readonly string[]).includes(controller)) dirs.set(controller, `${MOUNTS}/${controller}${path}`);
    }
  }
  return dirs;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
}

function spawnPaused(script: string): ChildProcess {
  // `read` holds the shell until it is inside the cgroup; everything it starts then inherits it.
  return spawn('sh', ['-c', `read x; ${script}`], { stdio: ['pipe', 'ignore', 'pipe'] });
}

void describe('cgroup v1 (real)', { skip: SKIP ?? false, timeout: 60_000 }, () => {
  let manager: CgroupManager;
  const children: ChildProcess[] = [];
  /** Base directories that existed before we ran; everything else we create is removed after. */
  const bases = new Map<string, boolean>();
  let counter = 0;
  const uniqueName = (what: string): string => `itest-${what}-${process.pid}-${++counter}`;

  before(async () => {
    const detection = await detectCgroups({ prefer: 'v1' });
    assert.ok(detection.ok);
    manager = detection.manager;
    const own = await cgroupDirsOf(process.pid);
    for (const controller of CONTROLLERS) {
      for (const dir of [`${MOUNTS}/${controller}/ebp`, `${own.get(controller) ?? ''}/ebp`]) {
        if (!bases.has(dir)) bases.set(dir, await exists(dir));
      }
    }
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const [dir, existed] of bases) {
      // Only what this run created (root's or nobody's), in case someone ran `ebp setup` meanwhile.
      const uid = await stat(dir).then((info) => info.uid, () => undefined);
      if (!existed && (uid === 0 || uid === NOBODY)) await rmdir(dir).catch(() => undefined);
    }
  });

  void it('detects v1 and describes the bases', () => {
    assert.equal(manager.version, 'v1');
    const { base, controllers } = manager.describe();
    for (const controller of ['memory', 'pids', 'cpu', 'freezer']) assert.ok(controllers.includes(controller));
    assert.match(base, /memory=\/sys\/fs\/cgroup\/memory\/.*ebp/);
  });

  void it('writes the limits, moves a process in, kills it and removes every directory', async () => {
    const name = uniqueName('basic');
    const cg = await manager.create(name, { memoryBytes: 64 * MiB, pids: 20, cpus: 0.5, ioWeight: 200 });
    assert.equal(cg.version, 'v1');
    assert.equal(cg.name, name);

    const sleep = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(sleep);
    assert.ok(sleep.pid !== undefined);
    await cg.addProcess(sleep.pid);

    const dirs = await cgroupDirsOf(sleep.pid);
    for (const controller of CONTROLLERS) {
      assert.match(dirs.get(controller) ?? '', new RegExp(`/ebp/ebp-${name}$`), controller);
    }
    const memory = dirs.get('memory') ?? '';
    const pids = dirs.get('pids') ?? '';
    const cpu = dirs.get('cpu') ?? '';
    const blkio = dirs.get('blkio') ?? '';
    assert.equal(await text(`${memory}/memory.limit_in_bytes`), String(64 * MiB));
    if (await exists(`${memory}/memory.memsw.limit_in_bytes`)) {
      assert.equal(await text(`${memory}/memory.memsw.limit_in_bytes`), String(64 * MiB));
    }
    assert.equal(await text(`${memory}/memory.swappiness`), '0');
    assert.equal(await text(`${pids}/pids.max`), '20');
    assert.equal(await text(`${cpu}/cpu.cfs_period_us`), '100000');
    assert.equal(await text(`${cpu}/cpu.cfs_quota_us`), '50000');
    if (await exists(`${blkio}/blkio.weight`)) assert.equal(await text(`${blkio}/blkio.weight`), '1000');
    else if (await exists(`${blkio}/blkio.bfq.weight`)) assert.equal(await text(`${blkio}/blkio.bfq.weight`), '200');

    const stats = await cg.stats();
    assert.ok(stats.pids >= 1, `pids ${stats.pids}`);
    assert.ok(stats.memoryCurrentBytes >= 0 && stats.memoryPeakBytes >= stats.memoryCurrentBytes);
    assert.equal(stats.oomKills, 0);

    await cg.killAll();
    const { signal } = await exited(sleep);
    assert.equal(signal, 'SIGKILL');
    assert.equal((await cg.stats()).pids, 0);

    await cg.close();
    for (const dir of dirs.values()) assert.equal(await exists(dir), false, dir);
    await cg.close(); // idempotent
    await assert.rejects(cg.addProcess(process.pid), (error: unknown) => {
      assert.ok(error instanceof EbpError);
      assert.equal(error.code, 'CGROUP_UNAVAILABLE');
      assert.match(error.message, /cgroup\.procs.*ENOENT/);
      return true;
    });
  });

  void it('the launcher moves itself in as the unprivileged user it runs as, through files given to that user only', async () => {
    const name = uniqueName('self');
    const cg = await manager.create(name, { memoryBytes: 64 * MiB, pids: 20, cpus: 1 });
    try {
      const files = cg.selfJoinFiles?.({ uid: NOBODY, gid: NOBODY }) ?? [];
      assert.ok(files.length >= 4, `one file per hierarchy: ${files.join(' ')}`);
      for (const file of files) {
        assert.match(file, new RegExp(`/ebp/ebp-${name}/tasks$`));
        assert.equal((await stat(file)).uid, NOBODY, file);
        assert.equal((await stat(file.replace(/tasks$/, 'cgroup.procs'))).uid, 0, 'only tasks changes hands');
      }
      // As nobody: the launcher writes 0 (itself) to each, then execs what follows `--`.
      const run = async (joinFiles: readonly string[]): Promise<{ code: number | null; stdout: string; refused: string }> => {
        const child = spawn('/bin/sh', ['-c', SELF_JOINING_LAUNCHER_SHIM, 'ebp-launch', ...joinFiles, '--', '/bin/cat', '/proc/self/cgroup'], {
          uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'pipe', 'ignore', 'ignore', 'ignore', 'ignore', 'pipe'],
        });
        children.push(child);
        let stdout = '';
        let refused = '';
        child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
        (child.stdio as unknown as NodeJS.ReadableStream[])[FD.launch]?.on('data', (chunk: Buffer) => { refused += chunk.toString(); });
        const { code } = await exited(child);
        await delay(50);
        return { code, stdout, refused };
      };
      const joined = await run(files);
      assert.equal(joined.code, 0, joined.refused);
      for (const controller of ['memory', 'pids', 'cpu', 'freezer']) {
        assert.match(joined.stdout, new RegExp(`:[a-z,]*\\b${controller}\\b[a-z,]*:/.*ebp/ebp-${name}\n`), controller);
      }
      // Another cgroup's tasks file is root's: the launcher names it and starts nothing.
      const other = await manager.create(uniqueName('other'), { memoryBytes: 64 * MiB, pids: 20, cpus: 1 });
      try {
        const otherTasks = (other.selfJoinFiles?.() ?? [])[0] ?? '';
        const refused = await run([otherTasks]);
        assert.equal(refused.code, 125);
        assert.equal(refused.stdout, '', 'nothing ran');
        assert.equal(refused.refused, otherTasks);
      } finally {
        await other.close();
      }
    } finally {
      await cg.close();
    }
  });

  void it('OOM-kills a memory hog and counts it', async () => {
    const cg = await manager.create(uniqueName('oom'), { memoryBytes: 64 * MiB, pids: 20, cpus: 1 });
    try {
      // tail keeps a line without newline in memory: 300 MiB of zeros is one such line.
      const hog = spawnPaused('head -c 300M /dev/zero | tail');
      children.push(hog);
      assert.ok(hog.pid !== undefined);
      await cg.addProcess(hog.pid);
      hog.stdin?.end('go\n');
      const { code, signal } = await exited(hog);
      assert.ok(code !== 0 || signal !== null, 'the hog should not succeed');
      const stats = await cg.stats();
      assert.ok(stats.oomKills >= 1, `oomKills ${stats.oomKills}`);
      assert.ok(stats.memoryPeakBytes <= 64 * MiB, `peak ${stats.memoryPeakBytes}`);
      assert.ok(stats.memoryPeakBytes > 32 * MiB, `peak ${stats.memoryPeakBytes}`);
    } finally {
      await cg.close();
    }
  });

  void it('enforces the pids limit, and killAll reaches orphans', async () => {
    const cg = await manager.create(uniqueName('pids'), { memoryBytes: 64 * MiB, pids: 20, cpus: 1 });
    try {
      const forker = spawnPaused('i=0; while [ $i -lt 50 ]; do sleep 30 & i=$((i+1)); done; wait');
      children.push(forker);
      assert.ok(forker.pid !== undefined);
      let stderr = '';
      forker.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      await cg.addProcess(forker.pid);
      const dirs = await cgroupDirsOf(forker.pid);
      forker.stdin?.end('go\n');
      // dash gives up at the first failed fork ("Cannot fork"), leaving its 19 sleeps behind.
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && forker.exitCode === null && (await cg.stats()).pids < 20) await delay(20);
      await delay(200);
      const stats = await cg.stats();
      assert.ok(stats.pids >= 19 && stats.pids <= 20, `pids ${stats.pids}, stderr: ${stderr}`);
      const events = await text(`${dirs.get('pids') ?? ''}/pids.events`).catch(() => 'max 1');
      assert.ok(Number(/max (\d+)/.exec(events)?.[1] ?? 0) >= 1, events);

      await cg.killAll();
      assert.equal(await text(`${dirs.get('pids') ?? ''}/cgroup.procs`), '');
      // pids.current still counts killed orphans until init reaps them.
      const reaped = Date.now() + 3000;
      while (Date.now() < reaped && (await cg.stats()).pids > 0) await delay(20);
      assert.equal((await cg.stats()).pids, 0);
      await exited(forker);
    } finally {
      await cg.close();
    }
  });

  void it('rejects a second sandbox of the same name and hostile names', async () => {
    const name = uniqueName('dup');
    const cg = await manager.create(name, { memoryBytes: 64 * MiB, pids: 20, cpus: 1 });
    try {
      await assert.rejects(manager.create(name, { memoryBytes: 64 * MiB, pids: 20, cpus: 1 }), (error: unknown) => {
        assert.ok(error instanceof EbpError);
        assert.equal(error.code, 'STATE_INVALID');
        return true;
      });
      for (const bad of ['../../escape', 'a/b', '.', '']) {
        await assert.rejects(manager.create(bad, { memoryBytes: 64 * MiB, pids: 20, cpus: 1 }), (error: unknown) => {
          assert.ok(error instanceof EbpError);
          assert.equal(error.code, 'USAGE');
          return true;
        });
      }
      // The failed duplicate must not have torn down the original.
      assert.equal((await cg.stats()).pids, 0);
      const probe = spawn('sleep', ['30'], { stdio: 'ignore' });
      children.push(probe);
      assert.ok(probe.pid !== undefined);
      await cg.addProcess(probe.pid);
      assert.equal((await cg.stats()).pids, 1);
    } finally {
      await cg.close();
    }
  });

  void it('prepareCgroups delegates <controller>/ebp so an unprivileged daemon can create sandboxes', async (t) => {
    const topLevel = CONTROLLERS.map((controller) => `${MOUNTS}/${controller}/ebp`);
    const preexisting = topLevel.filter((dir) => bases.get(dir) === true);
    let owner = NOBODY;
    if (preexisting.length === 0) {
      const { created } = await prepareCgroups({ uid: NOBODY, gid: NOBODY });
      for (const dir of topLevel) {
        assert.ok(created.includes(dir), `${dir} in ${created.join(' ')}`);
        const info = await stat(dir);
        assert.equal(info.uid, NOBODY, dir);
        assert.equal(info.gid, NOBODY, dir);
      }
    } else {
      // A real `ebp setup` prepared this machine: repeat it with the same owner (a no-op, as
      // setup is idempotent) and check the unprivileged side as the user it delegated to.
      const infos = await Promise.all(preexisting.map((dir) => stat(dir)));
      const owners = new Set(infos.map((info) => `${info.uid}:${info.gid}`));
      const [uid, gid] = [infos[0]?.uid, infos[0]?.gid];
      if (owners.size !== 1 || uid === undefined || gid === undefined || uid === 0 || preexisting.length !== topLevel.length) {
        t.skip(`${MOUNTS}/*/ebp already exist with mixed or root ownership; not touching them`);
        return;
      }
      const { created } = await prepareCgroups({ uid, gid });
      for (const dir of topLevel) {
        assert.ok(created.includes(dir), `${dir} in ${created.join(' ')}`);
        assert.equal((await stat(dir)).uid, uid, dir);
      }
      owner = uid;
    }

    // The daemon's side, unprivileged: detect, create, move its own child in, kill, close.
    const moduleUrl = new URL('../../src/sandbox/cgroup/index.js', import.meta.url).href;
    const script = `
      import { spawn } from 'node:child_process';
      const { detectCgroups } = await import(${JSON.stringify(moduleUrl)});
      const detection = await detectCgroups({ prefer: 'v1' });
      if (!detection.ok) { console.log(JSON.stringify(detection)); process.exit(1); }
      const cg = await detection.manager.create('unpriv-${process.pid}', { memoryBytes: 32 * 1024 * 1024, pids: 5, cpus: 0.25 });
      const child = spawn('sleep', ['30'], { stdio: 'ignore' });
      await cg.addProcess(child.pid);
      const pids = (await cg.stats()).pids;
      const cgroup = (await import('node:fs')).readFileSync('/proc/' + child.pid + '/cgroup', 'utf8');
      await cg.close();
      console.log(JSON.stringify({ ok: true, base: detection.manager.describe().base, pids, cgroup, signal: child.signalCode }));
    `;
    const daemon = spawn(process.execPath, ['--input-type=module', '-e', script], {
      uid: owner,
      gid: (await stat(`${MOUNTS}/memory/ebp`)).gid,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(daemon);
    let out = '';
    let err = '';
    daemon.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    daemon.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const { code } = await exited(daemon);
    assert.equal(code, 0, `stdout: ${out}\nstderr: ${err}`);
    const result = JSON.parse(out) as { ok: boolean; base: string; pids: number; cgroup: string };
    assert.equal(result.pids, 1);
    assert.match(result.base, /memory=\/sys\/fs\/cgroup\/memory\/ebp(?:\s|$)/);
    assert.match(result.cgroup, new RegExp(`:memory:/ebp/ebp-unpriv-${process.pid}\\n`));
  });
});
