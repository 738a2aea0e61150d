// Benchmark a: spawn-to-exit of `true` inside one Node process — runSandbox (one engine) against
// raw bwrap with the identical argv and descriptors. The two alternate run by run (ABAB, the
// order flipped every other pair) so that load from elsewhere on the machine hits both alike.
// Then, separately (so the measured runs stay untouched): a timeline of ebp's cgroup steps inside
// runSandbox, taken by wrapping the engine's CgroupManager, and what-ifs: the launcher moved into
// its cgroup by the daemon (by pid, the way before), and a pool of cgroups made ahead; each also
// with a quiet pause before every run, as a launch that comes alone meets the kernel.
import { setTimeout as delay } from 'node:timers/promises';

import type { CgroupManager, SandboxCgroup } from '../src/sandbox/cgroup/index.js';
import type { SandboxEngine } from '../src/sandbox/engine.js';
import { DEFAULT_LIMITS } from '../src/sandbox/policy.js';
import { buildPolicy } from '../src/sandbox/request.js';
import { runSandbox, startSandbox } from '../src/sandbox/runner.js';
import { rawPlan, runnerLauncher, runRawBwrap } from './raw-bwrap.js';
import { summarize, type Summary } from './stats.js';

export interface SpawnResult {
  readonly iterations: number;
  readonly warmup: number;
  readonly ebp: Summary;
  readonly raw: Summary;
  readonly ratioMedian: number;
  readonly ratioP90: number;
  /** Raw bwrap behind the runner's launcher shim, released at once (no cgroup), when there is one. */
  readonly launcher: { readonly raw: Summary; readonly ratioToRaw: number } | undefined;
  /** ebp's cgroup work alone (no process): create with limits, then close (kill check, rmdir). */
  readonly cgroupCreate: Summary | undefined;
  readonly cgroupClose: Summary | undefined;
  /** Where the time goes inside runSandbox (ms from the call), from the wrapped CgroupManager. */
  readonly phases: Phases | undefined;
  /** Runs with a quiet pause before each (QUIET_MS, not timed): the launcher joins by itself. */
  readonly quiet: WhatIfResult | undefined;
  /** What-if, after the same pause: the daemon moves the launcher by pid, the way before. */
  readonly byPidQuiet: WhatIfResult | undefined;
  /** What-if, back to back: the daemon moves the launcher by pid. */
  readonly byPid: WhatIfResult | undefined;
  /** What-if: the cgroup made before the run and removed after `exited` (a pool). */
  readonly pooled: WhatIfResult | undefined;
}

export interface WhatIfResult {
  readonly ebp: Summary;
  readonly raw: Summary;
  readonly ratioMedian: number;
  readonly ratioP90: number;
  /** By pid: the daemon's cgroup.procs writes, while the launcher waits. */
  readonly join: Summary | undefined;
}

/** The pause before each run of the `quiet` comparisons: the kernel's RCU state has settled by then. */
export const QUIET_MS = 60;

export interface Phases {
  readonly runs: number;
  /** engine.cgroups.create (mkdir per hierarchy, limits). */
  readonly create: Summary;
  /** From create's end to bwrap's close (spawn, the launcher's join, mounts, seccomp, `true`, exit). */
  readonly createToClose: Summary;
  /** cgroup.stats + cgroup.close (kill check, rmdir per hierarchy). */
  readonly teardown: Summary;
  /** From close's end to `exited` resolving. */
  readonly resolve: Summary;
  readonly total: Summary;
}

interface Timeline {
  start: number;
  createStart?: number;
  createEnd?: number;
  joinStart?: number;
  joinEnd?: number;
  statsStart?: number;
  closeEnd?: number;
}

interface WhatIf {
  /** The daemon moves the launcher by pid (addProcess), as before the launcher joined by itself. */
  readonly byPid: boolean;
  /** create() hands out a cgroup made before the run; close() finishes after `exited` resolves. */
  readonly pooled: boolean;
}

interface Instrumented {
  readonly engine: SandboxEngine;
  current(): Timeline;
  reset(): void;
  /** Pooled: make the next run's cgroup now (outside the timed run). */
  prepare(): Promise<void>;
  /** Pooled: wait for the deferred closes (outside the timed run). */
  flush(): Promise<void>;
}

/**
 * The engine with its CgroupManager wrapped: every cgroup step is time-stamped into `current`;
 * optionally with a what-if applied (not ebp's code; shows what a change in src/ would buy).
 */
function instrumented(engine: SandboxEngine, whatIf: WhatIf = { byPid: false, pooled: false }): Instrumented | undefined {
  const inner = engine.cgroups;
  if (inner === undefined) return undefined;
  let timeline: Timeline = { start: performance.now() };
  const pool: SandboxCgroup[] = [];
  const closing: Promise<void>[] = [];
  let poolCounter = 0;
  const wrapped: CgroupManager = {
    version: inner.version,
    describe: () => inner.describe(),
    sweep: (olderThanMs) => inner.sweep(olderThanMs),
    async create(name, limits) {
      timeline.createStart = performance.now();
      const cgroup = (whatIf.pooled ? pool.shift() : undefined) ?? (await inner.create(name, limits));
      timeline.createEnd = performance.now();
      const selfJoin = whatIf.byPid ? undefined : cgroup.selfJoinFiles?.bind(cgroup);
      const sandbox: SandboxCgroup = {
        version: cgroup.version,
        name: cgroup.name,
        async addProcess(pid) {
          timeline.joinStart = performance.now();
          await cgroup.addProcess(pid);
          timeline.joinEnd = performance.now();
        },
        ...(selfJoin === undefined ? {} : { selfJoinFiles: selfJoin }),
        async stats() {
          timeline.statsStart = performance.now();
          return cgroup.stats();
        },
        killAll: () => cgroup.killAll(),
        async close() {
          if (whatIf.pooled) closing.push(cgroup.close());
          else await cgroup.close();
          timeline.closeEnd = performance.now();
        },
      };
      return sandbox;
    },
  };
  return {
    engine: { ...engine, cgroups: wrapped },
    current: () => timeline,
    reset: () => { timeline = { start: performance.now() }; },
    async prepare() {
      if (whatIf.pooled) pool.push(await inner.create(`p-${process.pid}-${poolCounter++}`, DEFAULT_LIMITS));
    },
    async flush() {
      await Promise.all(closing.splice(0));
    },
  };
}

async function phaseBreakdown(engine: SandboxEngine, policy: Parameters<typeof runSandbox>[0], runs: number): Promise<Phases | undefined> {
  const probe = instrumented(engine);
  if (probe === undefined) return undefined;
  const columns = { create: [] as number[], createToClose: [] as number[], teardown: [] as number[], resolve: [] as number[], total: [] as number[] };
  for (let index = 0; index < runs; index += 1) {
    probe.reset();
    await timeEbp(probe.engine, policy);
    const end = performance.now();
    const t = probe.current();
    if (t.createStart === undefined || t.createEnd === undefined || t.statsStart === undefined || t.closeEnd === undefined) continue;
    columns.create.push(t.createEnd - t.createStart);
    columns.createToClose.push(t.statsStart - t.createEnd);
    columns.teardown.push(t.closeEnd - t.statsStart);
    columns.resolve.push(end - t.closeEnd);
    columns.total.push(end - t.start);
  }
  return {
    runs: columns.total.length,
    create: summarize(columns.create),
    createToClose: summarize(columns.createToClose),
    teardown: summarize(columns.teardown),
    resolve: summarize(columns.resolve),
    total: summarize(columns.total),
  };
}

/**
 * Spawn until the exit status is known (`ended`), as the daemon reports it to the client. The
 * cgroup teardown that follows is awaited before the next run but not timed (the phase
 * breakdown shows it as "cgroup stats + close").
 */
async function timeEbp(engine: SandboxEngine, policy: Parameters<typeof runSandbox>[0]): Promise<number> {
  const began = performance.now();
  const handle = await startSandbox(policy, { engine, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
  const exit = await handle.ended;
  const elapsed = performance.now() - began;
  await handle.exited;
  if (exit.code !== 0) throw new Error(`ebp sandbox exited ${exit.code} (${exit.reason}): ${exit.message ?? ''}`);
  return elapsed;
}

export async function benchSpawn(engine: SandboxEngine, options: { iterations: number; warmup: number }): Promise<SpawnResult> {
  const policy = buildPolicy({ command: ['true'] }, engine.identity);
  const plan = rawPlan(engine, policy);
  const timeRaw = async (): Promise<number> => {
    const began = performance.now();
    await runRawBwrap(engine, plan, policy.env);
    return performance.now() - began;
  };

  const launcher = runnerLauncher();
  const timeLauncher = async (): Promise<number> => {
    const began = performance.now();
    await runRawBwrap(engine, plan, policy.env, launcher);
    return performance.now() - began;
  };

  for (let index = 0; index < options.warmup; index += 1) {
    await timeEbp(engine, policy);
    await timeRaw();
    if (launcher !== undefined) await timeLauncher();
  }
  const ebp: number[] = [];
  const raw: number[] = [];
  const launched: number[] = [];
  for (let index = 0; index < options.iterations; index += 1) {
    if (index % 2 === 0) {
      ebp.push(await timeEbp(engine, policy));
      raw.push(await timeRaw());
      if (launcher !== undefined) launched.push(await timeLauncher());
    } else {
      if (launcher !== undefined) launched.push(await timeLauncher());
      raw.push(await timeRaw());
      ebp.push(await timeEbp(engine, policy));
    }
  }

  let cgroupCreate: Summary | undefined;
  let cgroupClose: Summary | undefined;
  if (engine.cgroups !== undefined) {
    const create: number[] = [];
    const close: number[] = [];
    for (let index = 0; index < Math.min(100, options.iterations); index += 1) {
      const began = performance.now();
      const cgroup = await engine.cgroups.create(`bench-${process.pid}-${index}`, DEFAULT_LIMITS);
      const made = performance.now();
      await cgroup.stats();
      await cgroup.close();
      create.push(made - began);
      close.push(performance.now() - made);
    }
    cgroupCreate = summarize(create);
    cgroupClose = summarize(close);
  }

  const phases = await phaseBreakdown(engine, policy, Math.min(100, options.iterations));

  /** Alternating runs of a what-if engine against raw bwrap; with `quietMs`, a pause before each run. */
  const compare = async (whatIf: WhatIf, quietMs = 0): Promise<WhatIfResult | undefined> => {
    const variant = instrumented(engine, whatIf);
    if (variant === undefined) return undefined;
    const ebpRuns: number[] = [];
    const rawRuns: number[] = [];
    const joins: number[] = [];
    const runEbp = async (): Promise<void> => {
      if (quietMs > 0) await delay(quietMs);
      variant.reset();
      ebpRuns.push(await timeEbp(variant.engine, policy));
      const t = variant.current();
      if (t.joinStart !== undefined && t.joinEnd !== undefined) joins.push(t.joinEnd - t.joinStart);
    };
    const runRaw = async (): Promise<void> => {
      if (quietMs > 0) await delay(quietMs);
      rawRuns.push(await timeRaw());
    };
    const count = quietMs > 0 ? Math.min(60, options.iterations) : options.iterations;
    for (let index = 0; index < count; index += 1) {
      await variant.prepare();
      if (index % 2 === 0) {
        await runEbp();
        await runRaw();
      } else {
        await runRaw();
        await runEbp();
      }
      await variant.flush();
    }
    const ebpSummary = summarize(ebpRuns);
    const rawSummary = summarize(rawRuns);
    return { ebp: ebpSummary, raw: rawSummary, ratioMedian: ebpSummary.median / rawSummary.median, ratioP90: ebpSummary.p90 / rawSummary.p90, join: joins.length === 0 ? undefined : summarize(joins) };
  };
  const quiet = await compare({ byPid: false, pooled: false }, QUIET_MS);
  const byPidQuiet = await compare({ byPid: true, pooled: false }, QUIET_MS);
  const byPid = await compare({ byPid: true, pooled: false });
  const pooled = await compare({ byPid: false, pooled: true });

  const ebpSummary = summarize(ebp);
  const rawSummary = summarize(raw);
  return {
    iterations: options.iterations,
    warmup: options.warmup,
    ebp: ebpSummary,
    raw: rawSummary,
    ratioMedian: ebpSummary.median / rawSummary.median,
    ratioP90: ebpSummary.p90 / rawSummary.p90,
    launcher: launcher === undefined ? undefined : { raw: summarize(launched), ratioToRaw: summarize(launched).median / rawSummary.median },
    cgroupCreate,
    cgroupClose,
    phases,
    quiet,
    byPidQuiet,
    byPid,
    pooled,
  };
}
