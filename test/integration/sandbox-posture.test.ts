// The sandbox's security posture read from OUTSIDE, the way gVisor's and Flatpak's posture tests
// look at a running sandbox: start `ebp sandbox -- sleep 30`, find the sandboxed `sleep` among
// the host's processes, and read its credentials, namespaces, cgroup, descriptors and mounts
// from the host's /proc. Then stop ebp with SIGTERM: the process and its cgroup must go.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { IS_ROOT, sandboxHostUser, sandboxProcesses, setupOnce, startEbp, type HostProcess } from './helpers/ebp.js';

before(async () => {
  await setupOnce();
});

const NAMESPACES = ['user', 'pid', 'net', 'ipc', 'uts', 'mnt', 'cgroup'] as const;

function statusField(status: string, name: string): string {
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
}

/** controller → host cgroup folder of a process (v1 hierarchies and the v2 unified one). */
function cgroupDirs(pid: number): Map<string, string> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' '));
  const dirs = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [, controllers = '', path = ''] = line.split(':');
    if (controllers === '') {
      const mount = mounts.find((m) => m[2] === 'cgroup2');
      if (mount?.[1] !== undefined) dirs.set('unified', `${mount[1]}${path}`);
      continue;
    }
    for (const controller of controllers.split(',')) {
      const mount = mounts.find((m) => m[2] === 'cgroup' && (m[3] ?? '').split(',').includes(controller));
      if (mount?.[1] !== undefined) dirs.set(controller, `${mount[1]}${path}`);
    }
  }
  return dirs;
}

async function findSleep(argv: readonly string[], timeoutMs = 10_000): Promise<HostProcess> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = sandboxProcesses(argv);
    if (found.length === 1 && found[0] !== undefined) return found[0];
    assert.ok(found.length <= 1, `more than one ${argv.join(' ')} of the sandbox uid: ${found.map((p) => p.pid).join(', ')}`);
    if (Date.now() > deadline) throw new Error(`no sandboxed ${argv.join(' ')} found`);
    await delay(20);
  }
}

test('a running sandbox seen from the host: credentials, namespaces, cgroup, descriptors, mounts; SIGTERM cleans up', { timeout: 60_000 }, async () => {
  // An unusual duration so that no other process of the sandbox uid is mistaken for ours.
  const argv = ['sleep', '30.25'];
  const run = startEbp(['sandbox', '--', ...argv]);
  try {
    const sleep = await findSleep(argv);
    const pid = sleep.pid;
    // The steady state: ebp has finished starting the sandbox (see the start-up test below).
    await delay(200);
    const { uid, gid } = sandboxHostUser();

    // Credentials: the unprivileged host uid, no capabilities, no_new_privs, a seccomp filter.
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.equal(statusField(status, 'NoNewPrivs'), '1');
    assert.equal(statusField(status, 'Seccomp'), '2');
    assert.ok(Number(statusField(status, 'Seccomp_filters')) >= 1);
    for (const name of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(statusField(status, name), '0000000000000000', name);
    assert.equal(statusField(status, 'Uid'), `${uid}\t${uid}\t${uid}\t${uid}`);
    assert.equal(statusField(status, 'Gid'), `${gid}\t${gid}\t${gid}\t${gid}`);
    assert.notEqual(uid, 0);
    // Inside its pid namespace the command is pid 2 (bwrap's init is 1).
    assert.match(statusField(status, 'NSpid'), new RegExp(`^${pid}\\s+\\d+\\s+2$|^${pid}\\s+2$`));

    // Every namespace differs from ours.
    for (const ns of NAMESPACES) {
      const theirs = readlinkSync(`/proc/${pid}/ns/${ns}`);
      const ours = readlinkSync(`/proc/self/ns/${ns}`);
      assert.match(theirs, new RegExp(`^${ns}:\\[\\d+\\]$`));
      assert.notEqual(theirs, ours, `${ns} namespace shared with the host`);
    }

    // Its own cgroup, with the limits on it.
    const cgroupText = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    const dirs = cgroupDirs(pid);
    const v1 = dirs.has('memory');
    const sandboxDirs = new Set<string>();
    for (const controller of v1 ? ['memory', 'pids', 'cpu'] : ['unified']) {
      const dir = dirs.get(controller) ?? '';
      assert.match(dir, v1 ? /\/ebp\/ebp-s-[0-9a-f]+$/ : /\/ebp-s-[0-9a-f]+$/, `${controller}: ${cgroupText}`);
      assert.ok(existsSync(dir), dir);
      sandboxDirs.add(dir);
    }
    if (v1) {
      assert.match(cgroupText, /:memory:.*\/ebp\/ebp-s-/);
      assert.match(cgroupText, /:pids:.*\/ebp\/ebp-s-/);
      assert.equal(readFileSync(`${dirs.get('memory') ?? ''}/memory.limit_in_bytes`, 'utf8').trim(), String(1024 ** 3));
      assert.equal(readFileSync(`${dirs.get('pids') ?? ''}/pids.max`, 'utf8').trim(), '256');
      assert.ok(readFileSync(`${dirs.get('pids') ?? ''}/cgroup.procs`, 'utf8').split('\n').includes(String(pid)));
    }

    // Descriptors: stdin, stdout, stderr only.
    assert.deepEqual(readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b), [0, 1, 2]);

    // Mounts: no /sys, no host /home, /usr read-only and nosuid, / read-only.
    const mounts = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n').map((line) => line.split(' '));
    const points = mounts.map((m) => m[4] ?? '');
    assert.ok(!points.some((p) => p === '/sys' || p.startsWith('/sys/')), points.join(' '));
    assert.ok(!points.includes('/home'), 'the host /home is not mounted');
    assert.deepEqual(points.filter((p) => p.startsWith('/home')), ['/home/ebp']);
    const options = (point: string): string[] => (mounts.find((m) => m[4] === point)?.[5] ?? '').split(',');
    assert.ok(options('/usr').includes('ro'), `/usr: ${options('/usr').join(',')}`);
    assert.ok(options('/usr').includes('nosuid'));
    assert.ok(options('/').includes('ro'));
    assert.ok(options('/etc').includes('ro'));
    for (const m of mounts) assert.ok((m[5] ?? '').split(',').includes('nosuid'), `${m[4] ?? ''} is not nosuid`);

    // Stop: SIGTERM to ebp is passed to the command; everything goes within 2 s.
    const stopped = Date.now();
    run.child.kill('SIGTERM');
    while (existsSync(`/proc/${pid}`) && Date.now() - stopped < 2000) await delay(10);
    assert.equal(existsSync(`/proc/${pid}`), false, 'the sandboxed sleep outlived SIGTERM by 2 s');
    const result = await run.done;
    assert.ok(Date.now() - stopped < 2000, `ebp took ${Date.now() - stopped} ms to finish`);
    assert.equal(result.code, 143, result.stderr);
    for (const dir of sandboxDirs) assert.equal(existsSync(dir), false, `cgroup ${dir} left behind`);
    assert.deepEqual(sandboxProcesses(argv), []);
  } finally {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
  }
});

/** v1 only: the folders sandbox cgroups are made in, for every hierarchy (nested under ours, or top-level). */
function v1SandboxBases(): Map<string, string[]> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' '));
  const own = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers = '', path = ''] = line.split(':');
    for (const controller of controllers.split(',')) own.set(controller, path);
  }
  const bases = new Map<string, string[]>();
  for (const m of mounts) {
    if (m[2] !== 'cgroup' || m[1] === undefined) continue;
    const controller = (m[3] ?? '').split(',').find((option) => own.has(option)) ?? '';
    const ownPath = own.get(controller) ?? '/';
    bases.set(m[1], [...new Set([`${m[1]}${ownPath === '/' ? '' : ownPath}/ebp`, `${m[1]}/ebp`])]);
  }
  return bases;
}

function memoryMount(): string | undefined {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' '))
    .find((m) => m[2] === 'cgroup' && (m[3] ?? '').split(',').includes('memory'))?.[1];
}

/** Names of sandbox cgroups whose memory limit is exactly `bytes` (our marker). */
function cgroupsWithLimit(bytes: number): string[] {
  const mount = memoryMount();
  if (mount === undefined) return [];
  const names: string[] = [];
  for (const base of v1SandboxBases().get(mount) ?? []) {
    let entries: string[] = [];
    try {
      entries = readdirSync(base).filter((name) => name.startsWith('ebp-s-'));
    } catch {
      continue;
    }
    for (const name of entries) {
      try {
        if (readFileSync(`${base}/${name}/memory.limit_in_bytes`, 'utf8').trim() === String(bytes)) names.push(name);
      } catch {
        // removed meanwhile
      }
    }
  }
  return names;
}

/** Removes what a leaked sandbox cgroup left in every hierarchy (only empty folders). */
function removeLeaked(name: string): void {
  for (const bases of v1SandboxBases().values()) {
    for (const base of bases) {
      try {
        if (readFileSync(`${base}/${name}/cgroup.procs`, 'utf8').trim() === '') rmdirSync(`${base}/${name}`);
      } catch {
        // not in this hierarchy
      }
    }
  }
}

test('SIGTERM while the sandbox is still starting: the sandbox and its cgroup are gone within 2 s', {
  timeout: 60_000,
  skip: IS_ROOT && memoryMount() !== undefined ? false : 'needs root and a cgroup v1 memory hierarchy to find the cgroup by its limit',
}, async () => {
  // A memory limit nobody else uses marks our sandbox's cgroup.
  const marker = 96 * 1024 * 1024 + 4096 * (1 + Math.floor(Math.random() * 1000));
  const leaks: string[] = [];
  for (let round = 0; round < 3; round += 1) {
    const argv = ['sleep', `29.${round + 1}`];
    const run = startEbp(['sandbox', '--memory', String(marker), '--', ...argv]);
    // Strike as soon as the cgroup exists: ebp is between creating it and starting the command.
    const deadline = Date.now() + 10_000;
    let name: string | undefined;
    while (name === undefined && Date.now() < deadline) {
      name = cgroupsWithLimit(marker).find((n) => !leaks.includes(n));
      if (name === undefined) await delay(1);
    }
    assert.ok(name !== undefined, 'the sandbox cgroup never appeared');
    run.child.kill('SIGTERM');
    const result = await run.done;
    const stopped = Date.now();
    while (cgroupsWithLimit(marker).includes(name) && Date.now() - stopped < 2000) await delay(20);
    if (cgroupsWithLimit(marker).includes(name)) leaks.push(name);
    assert.deepEqual(sandboxProcesses(argv), [], `round ${round}: sandbox processes survived (ebp: ${String(result.code)}/${String(result.signal)})`);
  }
  for (const name of leaks) removeLeaked(name);
  assert.deepEqual(leaks, [], `SIGTERM during start-up left ${leaks.length} of 3 sandbox cgroups behind: ${leaks.join(', ')}`);
});
