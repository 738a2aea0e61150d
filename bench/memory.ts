// Benchmark c: memory of many idle sandboxes started from one Node process. Per-session overhead
// = (PSS of every process under us — bwrap's monitor, bwrap's pid-1 init, the command — plus the
// growth of our own RSS) / count. The anchor is the same number of raw bwrap + sleep with ebp's
// argv spawned from the same process. PSS splits shared pages (bwrap's and sleep's text, libc)
// among their users, so the sum over N sandboxes is what they really cost in user memory.
import { setTimeout as delay } from 'node:timers/promises';

import type { SandboxEngine } from '../src/sandbox/engine.js';
import type { SandboxPolicy } from '../src/sandbox/policy.js';
import { buildPolicy } from '../src/sandbox/request.js';
import { startSandbox, type SandboxHandle } from '../src/sandbox/runner.js';
import { rawPlan, spawnRawBwrap, type RawSandbox } from './raw-bwrap.js';
import { descendants, processMemory, rssKiB, type ProcEntry } from './system.js';

export interface MemorySample {
  readonly count: number;
  /** Processes found under us while all were idle, by name. */
  readonly processes: Record<string, number>;
  readonly pssKiB: number;
  readonly rssKiB: number;
  readonly nodeRssGrowthKiB: number;
  /** (pss + node growth) / count. */
  readonly perSessionKiB: number;
  /** pss / count alone. */
  readonly perSessionPssKiB: number;
  /**
   * Mean memory charged to each sandbox's own cgroup (ebp only): the pid-1 init and the command,
   * user pages plus the kernel memory they allocated after joining (mounts, tmpfs, page tables).
   */
  readonly perSessionCgroupKiB: number | undefined;
  readonly startMs: number;
  readonly stopMs: number;
}

export interface MemoryResult {
  readonly ebp: MemorySample;
  readonly raw: MemorySample;
  readonly ratio: number;
  /** slirp4netns per --net sandbox (PSS), measured on a smaller set. */
  readonly net: { count: number; slirpPssKiB: number; perSessionPssKiB: number } | undefined;
}

function tally(list: readonly ProcEntry[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const proc of list) counts[proc.name] = (counts[proc.name] ?? 0) + 1;
  return counts;
}

/** Let the just-started processes finish their start-up page faults, then collect garbage. */
async function quiesce(): Promise<void> {
  await delay(1000);
  rssKiB();
}

async function measure<T>(
  count: number,
  startOne: () => Promise<T>,
  stopAll: (items: T[]) => Promise<void>,
  cgroupBytes?: (items: readonly T[]) => Promise<number | undefined>,
): Promise<MemorySample> {
  await quiesce();
  const rssBefore = rssKiB();
  const items: T[] = [];
  const began = performance.now();
  try {
    for (let index = 0; index < count; index += 1) items.push(await startOne());
    const startMs = performance.now() - began;
    await quiesce();
    const procs = descendants(process.pid);
    let pss = 0;
    let rss = 0;
    for (const proc of procs) {
      const memory = processMemory(proc.pid);
      pss += memory.pssKiB;
      rss += memory.rssKiB;
    }
    const growth = Math.max(0, rssKiB() - rssBefore);
    const charged = cgroupBytes === undefined ? undefined : await cgroupBytes(items);
    const stopBegan = performance.now();
    await stopAll(items.splice(0));
    return {
      count,
      processes: tally(procs),
      pssKiB: pss,
      rssKiB: rss,
      nodeRssGrowthKiB: growth,
      perSessionKiB: (pss + growth) / count,
      perSessionPssKiB: pss / count,
      perSessionCgroupKiB: charged === undefined ? undefined : charged / 1024 / count,
      startMs,
      stopMs: performance.now() - stopBegan,
    };
  } finally {
    if (items.length > 0) await stopAll(items);
  }
}

function idlePolicy(engine: SandboxEngine, network: boolean): SandboxPolicy {
  // The timeout is a safety net only: everything is stopped explicitly long before.
  return buildPolicy({ command: ['sleep', '600'], network, timeoutMs: 300_000 }, engine.identity);
}

async function stopSandboxes(handles: SandboxHandle[]): Promise<void> {
  const exits = await Promise.all(handles.map((handle) => handle.stop(1000)));
  const bad = exits.filter((exit) => exit.reason !== 'stopped' && exit.reason !== 'signaled');
  if (bad.length > 0) throw new Error(`${bad.length} sandboxes ended unexpectedly: ${bad[0]?.message ?? bad[0]?.reason ?? ''}`);
}

export async function benchMemory(engine: SandboxEngine, options: { count: number; netCount: number }): Promise<MemoryResult> {
  const policy = idlePolicy(engine, false);
  const start = (network: boolean) => async (): Promise<SandboxHandle> => {
    const handle = await startSandbox(network ? idlePolicy(engine, true) : policy, { engine, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
    if (handle.commandPid() === undefined) {
      const exit = await handle.exited;
      throw new Error(`sandbox did not start: ${exit.message ?? exit.reason}`);
    }
    return handle;
  };
  const ebp = await measure(options.count, start(false), stopSandboxes, async (handles) => {
    const stats = await Promise.all(handles.map((handle) => handle.stats()));
    if (stats.some((entry) => entry === undefined)) return undefined;
    return stats.reduce((total, entry) => total + (entry?.memoryCurrentBytes ?? 0), 0);
  });

  const plan = rawPlan(engine, policy);
  const raw = await measure<RawSandbox>(
    options.count,
    async () => {
      const sandbox = spawnRawBwrap(engine, plan, policy.env);
      await sandbox.started;
      return sandbox;
    },
    async (items) => {
      // SIGKILL to bwrap's monitor: --die-with-parent takes the pid namespace with it.
      for (const item of items) item.child.kill('SIGKILL');
      await Promise.all(items.map((item) => item.closed.catch(() => -1)));
    },
  );

  let net: MemoryResult['net'];
  if (options.netCount > 0 && engine.slirp !== undefined) {
    const handles: SandboxHandle[] = [];
    try {
      for (let index = 0; index < options.netCount; index += 1) handles.push(await start(true)());
      await quiesce();
      const slirps = descendants(process.pid).filter((proc) => proc.name === 'slirp4netns');
      const slirpPss = slirps.reduce((total, proc) => total + processMemory(proc.pid).pssKiB, 0);
      net = { count: slirps.length, slirpPssKiB: slirpPss, perSessionPssKiB: slirps.length === 0 ? Number.NaN : slirpPss / slirps.length };
    } finally {
      await stopSandboxes(handles);
    }
  }

  return { ebp, raw, ratio: ebp.perSessionKiB / raw.perSessionKiB, net };
}
