// The anchor: bwrap with exactly ebp's argv (from buildBwrapArgs), spawned from the same Node
// process with the same descriptors (numbers from bwrap-args' FD table) — the seccomp program,
// --json-status-fd (read, as ebp does), --block-fd (released at once: nothing to do in between),
// the launch shim's ready pipe, the generated /etc files and the host /etc files it copies — as
// the same unprivileged user. What it leaves out is exactly ebp's own work around bwrap: the
// per-sandbox cgroup (create, limits, join before exec, stats, kill/remove) and anything the
// runner puts in front of bwrap for it, the sandbox id, timers and the exit classification.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

import * as bwrapArgs from '../src/sandbox/bwrap-args.js';
import { buildBwrapArgs, FD, type BwrapPlan } from '../src/sandbox/bwrap-args.js';
import type { SandboxEngine } from '../src/sandbox/engine.js';
import { hostEtcEntries, openHostEtcFiles } from '../src/sandbox/etc.js';
import type { SandboxPolicy } from '../src/sandbox/policy.js';

/** ebp's argv for a policy, with the host /etc files it copies (as the runner gives them). */
export interface RawPlan extends BwrapPlan {
  /** Host /etc entries opened for each spawn and passed after the data files. */
  readonly copiedEtc: readonly string[];
}

/** The plan the runner would make for `policy` on this host (the same files copied). */
export function rawPlan(engine: SandboxEngine, policy: SandboxPolicy): RawPlan {
  const probe = openHostEtcFiles(hostEtcEntries(policy.network));
  probe.close();
  return { ...buildBwrapArgs(policy, { layout: engine.layout, copiedEtc: probe.names }), copiedEtc: probe.names };
}

export interface RawSandbox {
  readonly child: ChildProcess;
  /** Resolves once the command has started (the shim wrote to fd 6) or bwrap ended. */
  readonly started: Promise<void>;
  /** Exit status of bwrap, once every descriptor is closed. */
  readonly closed: Promise<number>;
}

/** The sh shim ebp's runner puts in front of bwrap (it joins the cgroup first), when it has one. */
export interface Launcher {
  readonly shim: string;
  readonly fd: number;
}

/** The runner's launcher, looked up by name so that this file builds with and without one. */
export function runnerLauncher(): Launcher | undefined {
  const exports = bwrapArgs as unknown as Record<string, unknown>;
  const shim = exports['LAUNCHER_SHIM'];
  const fd = (FD as unknown as Record<string, unknown>)['launch'];
  return typeof shim === 'string' && typeof fd === 'number' ? { shim, fd } : undefined;
}

/** The descriptors bwrap's argv refers to (any other slot below the data files stays closed). */
function bwrapFds(plan: BwrapPlan): Set<number> {
  const fds = new Set<number>([FD.seccomp, FD.status, FD.block, FD.ready]);
  plan.dataFiles.forEach((_, index) => fds.add(FD.firstData + index));
  return fds;
}

/**
 * With `launcher`, bwrap is started behind the runner's launcher shim exactly as the runner does,
 * released at once (no cgroup to join): the shim's own cost, separated from the cgroup's.
 */
export function spawnRawBwrap(engine: SandboxEngine, plan: RawPlan, env: Readonly<Record<string, string>>, launcher?: Launcher): RawSandbox {
  const used = bwrapFds(plan);
  if (launcher !== undefined) used.add(launcher.fd);
  // Opened per spawn, as the runner does: bwrap reads each to its end.
  const copied = openHostEtcFiles(plan.copiedEtc);
  if (copied.names.join('\0') !== plan.copiedEtc.join('\0')) {
    copied.close();
    throw new Error(`the host's /etc files changed since the plan was made: ${copied.names.join(' ')}`);
  }
  const firstCopied = FD.firstData + plan.dataFiles.length;
  const last = Math.max(...used, firstCopied - 1) + 1;
  const stdio: StdioOptions = [...Array.from({ length: last }, (_, fd) => (used.has(fd) ? 'pipe' as const : 'ignore' as const)), ...copied.fds];
  const [program, args] = launcher === undefined ? [engine.bwrap, plan.args] : ['/bin/sh', ['-c', launcher.shim, 'ebp-launch', engine.bwrap, ...plan.args]];
  let child: ChildProcess;
  try {
    child = spawn(program, args, {
      stdio,
      env: { ...env },
      ...(engine.identity.switchUser ? { uid: engine.identity.uid, gid: engine.identity.gid } : {}),
    });
  } finally {
    copied.close();
  }
  const pipe = (fd: number): Readable & Writable => child.stdio[fd] as Readable & Writable;
  for (const fd of used) pipe(fd).on('error', () => undefined);
  pipe(FD.seccomp).end(engine.seccomp);
  plan.dataFiles.forEach((content, index) => pipe(FD.firstData + index).end(content));

  if (launcher !== undefined) pipe(launcher.fd).end('\n');
  pipe(FD.block).end('x');
  let statusText = '';
  pipe(FD.status).on('data', (chunk: Buffer) => {
    if (statusText.includes('child-pid')) return;
    statusText += chunk.toString();
  });
  const closed = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => {
      for (const fd of used) pipe(fd).destroy();
    });
    child.once('close', (code, signal) => { resolve(code ?? (signal === null ? -1 : 128)); });
  });
  const started = Promise.race([
    new Promise<void>((resolve) => pipe(FD.ready).once('data', () => { resolve(); })),
    closed.then(() => undefined, () => undefined),
  ]);
  return { child, started, closed };
}

/** Spawn-to-exit of one raw bwrap run; rejects when the command did not exit 0. */
export async function runRawBwrap(engine: SandboxEngine, plan: RawPlan, env: Readonly<Record<string, string>>, launcher?: Launcher): Promise<void> {
  const code = await spawnRawBwrap(engine, plan, env, launcher).closed;
  if (code !== 0) throw new Error(`raw bwrap exited with status ${code}`);
}
