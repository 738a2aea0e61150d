// How a sandbox gets into its cgroup on cgroup v1 (sandbox/runner.ts, bwrap-args.ts
// SELF_JOINING_LAUNCHER_SHIM): the launcher in front of bwrap moves itself in, so that the
// sandbox's every process is in it from the start; a launcher that cannot is a setup failure that
// names the file, and nothing of the command runs.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { EbpError } from '../../src/lib/errors.js';
import { parseProcCgroup } from '../../src/sandbox/cgroup/files.js';
import type { CgroupManager, SandboxCgroup } from '../../src/sandbox/cgroup/index.js';
import { createEngine, type SandboxEngine } from '../../src/sandbox/engine.js';
import { buildPolicy } from '../../src/sandbox/request.js';
import { startSandbox } from '../../src/sandbox/runner.js';
import { setupOnce } from './helpers/ebp.js';

const T = { timeout: 60_000 } as const;
const PIPES = { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' } as const;

let engine: SandboxEngine;
let skip: string | false = process.getuid?.() === 0 ? false : 'needs root (sandboxes run as the ebp-sandbox user)';

before(async () => {
  if (skip !== false) return;
  await setupOnce();
  engine = await createEngine();
  if (engine.cgroups?.version !== 'v1') skip = 'this machine has no usable cgroup v1';
});

/** The cgroup paths of PID per controller, from /proc/PID/cgroup as the host sees them. */
function cgroupsOf(pid: number): Map<string, string> {
  return new Map(parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8')).flatMap((line) => line.controllers.map((controller) => [controller, line.path] as const)));
}

async function read(stream: NodeJS.ReadableStream | null): Promise<string> {
  let text = '';
  for await (const chunk of stream ?? []) text += String(chunk);
  return text;
}

/** ENGINE's cgroups, each telling the launcher to join through FILES (or failing to) instead of its own. */
function joiningThrough(files: readonly string[] | Error, made: SandboxCgroup[]): SandboxEngine {
  const inner = engine.cgroups as CgroupManager;
  const cgroups: CgroupManager = {
    version: inner.version,
    describe: () => inner.describe(),
    sweep: (olderThanMs) => inner.sweep(olderThanMs),
    async create(name, limits) {
      const cgroup = await inner.create(name, limits);
      made.push(cgroup);
      return {
        version: cgroup.version,
        name: cgroup.name,
        addProcess: (pid) => cgroup.addProcess(pid),
        selfJoinFiles: () => {
          if (files instanceof Error) throw files;
          return files;
        },
        stats: () => cgroup.stats(),
        killAll: () => cgroup.killAll(),
        close: () => cgroup.close(),
      };
    },
  };
  return { ...engine, cgroups };
}

describe('a sandbox on cgroup v1', () => {
  test('has its command in its own cgroup in every hierarchy, the launcher having moved itself there', T, async (t) => {
    if (skip !== false) {
      t.skip(skip);
      return;
    }
    const handle = await startSandbox(buildPolicy({ command: ['cat'] }, engine.identity), { engine, ...PIPES });
    try {
      let pid: number | undefined;
      for (let tries = 0; tries < 200 && pid === undefined; tries += 1) {
        pid = handle.commandPid();
        if (pid === undefined) await delay(10);
      }
      assert.ok(pid !== undefined, 'the sandbox never reported its command');
      const paths = cgroupsOf(pid);
      for (const controller of ['memory', 'pids', 'cpu', 'cpuacct', 'freezer']) {
        assert.match(paths.get(controller) ?? '', new RegExp(`/ebp/ebp-s-${handle.id}$`), controller);
      }
    } finally {
      handle.stdin?.end();
    }
    assert.equal((await handle.exited).code, 0);
  });

  test('does not start when the launcher cannot move itself in: a setup failure that names the file', T, async (t) => {
    if (skip !== false) {
      t.skip(skip);
      return;
    }
    const made: SandboxCgroup[] = [];
    const file = '/proc/1/ebp-not-a-cgroup/tasks';
    const handle = await startSandbox(buildPolicy({ command: ['echo', 'ran'] }, engine.identity), { engine: joiningThrough([file], made), ...PIPES });
    const [stdout, exit] = await Promise.all([read(handle.stdout), handle.exited]);
    assert.equal(exit.reason, 'setup-failed');
    assert.equal(exit.code, 125);
    assert.equal(exit.message, `the sandbox could not be set up: the launcher (uid ${engine.identity.uid}) could not move itself into the sandbox's cgroup: writing ${file} failed`);
    assert.equal(stdout, '', 'the command did not run');
    assert.equal(made.length, 1);
    assertRemoved(handle.id);
  });

  test('does not start when the launcher\'s files cannot be given to it: the error names them, the cgroup goes', T, async (t) => {
    if (skip !== false) {
      t.skip(skip);
      return;
    }
    const made: SandboxCgroup[] = [];
    const refusal = new EbpError('CGROUP_UNAVAILABLE', 'cannot give to 995:995 /sys/fs/cgroup/pids/ebp/x/tasks: EPERM', { hint: 'run `ebp doctor`' });
    await assert.rejects(startSandbox(buildPolicy({ command: ['true'] }, engine.identity), { engine: joiningThrough(refusal, made), ...PIPES }), (error: unknown) => error === refusal);
    assert.equal(made.length, 1);
    assertRemoved(made[0]?.name.replace(/^s-/, '') ?? '');
  });
});

/** No directory of sandbox ID's cgroup is left in any hierarchy. */
function assertRemoved(id: string): void {
  const bases = [...(engine.cgroups?.describe().base ?? '').matchAll(/=(\S+)/g)].map((match) => match[1] ?? '');
  assert.ok(bases.length >= 4, 'a base per hierarchy');
  for (const base of bases) assert.equal(existsSync(`${base}/ebp-s-${id}`), false, `${base}: the cgroup was removed`);
}
