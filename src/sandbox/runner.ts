// Runs one policy in a fresh bwrap sandbox: joins its cgroup before the command starts, attaches
// the network when asked, reports how it ended, and tears everything down however it ends.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { close, openSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Duplex, Readable, Writable } from 'node:stream';
import { FILES_SETUP_EXIT, filesPrefix, filesTools, joinSftp } from '../files/stage.js';
import { EbpError } from '../lib/errors.js';
import { randomHex } from '../lib/random.js';
import { formatSize } from '../lib/units.js';
import { buildBwrapArgs, FD, LAUNCHER_SHIM, PREPARED_SHIM_NAMES, preparedInput, SELF_JOINING_LAUNCHER_SHIM, type BwrapPlan } from './bwrap-args.js';
import { hostEtcEntries, openHostEtcFiles } from './etc.js';
import type { CgroupStats, SandboxCgroup } from './cgroup/index.js';
import { defaultEngine, type SandboxEngine } from './engine.js';
import { attachNat, natAddresses, type NatHandle } from './network.js';
import type { SandboxPolicy } from './policy.js';

export type ExitReason = 'exited' | 'signaled' | 'oom' | 'timeout' | 'stopped' | 'setup-failed';

export interface SandboxExit {
  /** The status to report: the command's own, 128+N for a signal, 124 timeout, 125 setup. */
  readonly code: number;
  readonly reason: ExitReason;
  /** For the user, when the reason is not plain: OOM, timeout, setup failure. */
  readonly message?: string;
  readonly stats?: CgroupStats;
  readonly durationMs: number;
}

type StdioSlot = 'inherit' | 'pipe' | 'ignore' | number;

export interface StartOptions {
  readonly engine?: SandboxEngine;
  readonly stdin?: StdioSlot;
  readonly stdout?: StdioSlot;
  readonly stderr?: StdioSlot;
  /** stdin/stdout/stderr are one terminal: the command gets it as its controlling terminal. */
  readonly terminal?: boolean;
  /** Aborting stops the sandbox (SIGTERM, then SIGKILL after the grace period). */
  readonly signal?: AbortSignal;
  /** The SFTP stream serving `policy.remoteFiles` (required with it). */
  readonly sftp?: Duplex;
}

export interface SandboxHandle {
  readonly id: string;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Settles once everything of the sandbox is gone (processes, cgroup, network). */
  readonly exited: Promise<SandboxExit>;
  /** Settles as soon as how it ended is known, before the teardown (for reporting it early). */
  readonly ended: Promise<SandboxExit>;
  /** Host pid of the sandboxed command, once it started. */
  commandPid(): number | undefined;
  /** Deliver a signal to the command's process group; false when it is not running. */
  kill(signal: NodeJS.Signals): boolean;
  /** Graceful stop: SIGTERM, then everything is killed after `graceMs`. */
  stop(graceMs?: number): Promise<SandboxExit>;
  stats(): Promise<CgroupStats | undefined>;
}

const STOP_GRACE_MS = 2000;
const TIMEOUT_EXIT = 124;
const SETUP_EXIT = 125;
/** bwrap's status lines are two short JSON objects; more than this is not read. */
const MAX_STATUS_TEXT = 4096;
/** After bwrap's exit, how long its ready pipe may take to give up what is left in it. */
const READY_DRAIN_MS = 1000;

let rlimitWarned = false;

function newId(): string {
  return randomHex(6);
}

/** Children of a process, read from procfs (the first child of bwrap's pid 1 is the command). */
function firstChild(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    const first = text.split(' ')[0];
    return first === undefined || first === '' ? undefined : Number(first);
  } catch {
    return undefined;
  }
}

function rlimitPrefix(engine: SandboxEngine, policy: SandboxPolicy): string[] {
  if (engine.cgroups !== undefined || engine.prlimit === undefined) return [];
  if (!rlimitWarned) {
    rlimitWarned = true;
    process.emitWarning(`no usable cgroup (${engine.cgroupProblem ?? 'unknown'}): memory and process limits fall back to rlimits, CPU is not limited`, { code: 'EBP_NO_CGROUP' });
  }
  return [engine.prlimit, `--as=${policy.limits.memoryBytes}`, `--nproc=${policy.limits.pids}`, '--'];
}

export async function startSandbox(policy: SandboxPolicy, options: StartOptions = {}): Promise<SandboxHandle> {
  return (await openSandbox(policy, options, false)).handle;
}

/**
 * A sandbox set up ahead of its launch: namespaces, mounts, cgroup and seccomp are in place and
 * a shim waits for the command (bwrap-args.ts PREPARED_SHIM). It serves exactly one launch.
 */
export interface PreparedSandbox {
  /** Settles once it is gone, used or not. */
  readonly exited: Promise<SandboxExit>;
  /**
   * Runs `command` in it with `env` added to the policy's environment; once. Throws when it is
   * no longer waiting (it died or was used): the caller then starts a sandbox the usual way.
   */
  start(command: readonly string[], env: Readonly<Record<string, string>>): SandboxHandle;
  /** Removes it unused. */
  discard(): Promise<void>;
}

/** Environment names a prepared sandbox is given (the shim exports them). */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Sets up a sandbox for `policy` (its command is ignored) and leaves it waiting for one. Options
 * as startSandbox's, except `signal` (a prepared sandbox is discarded instead) and `sftp` (the
 * person's files belong to one launch, so a sandbox with them cannot be made ahead).
 */
export async function prepareSandbox(policy: SandboxPolicy, options: Omit<StartOptions, 'signal' | 'sftp'> = {}): Promise<PreparedSandbox> {
  const opened = await openSandbox(policy, options, true);
  const { handle, activate } = opened;
  let used = false;
  let gone = false;
  void handle.exited.then(() => { gone = true; });
  return {
    exited: handle.exited,
    start(command, env) {
      if (used || gone) throw new EbpError('SANDBOX_SETUP_FAILED', 'the prepared sandbox is no longer waiting');
      if (command.length === 0) throw new TypeError('sandbox policy has an empty command');
      for (const name of Object.keys(env)) {
        if (!ENV_NAME.test(name)) throw new EbpError('USAGE', `invalid environment variable name "${name.slice(0, 64)}"`);
        // The shim's own variables: such a launch is started the usual way instead.
        if (PREPARED_SHIM_NAMES.test(name)) throw new EbpError('USAGE', `the environment variable "${name}" is the waiting shim's own`);
      }
      // argv and environment strings end at a NUL: one inside a word cannot be passed on.
      if ([...command, ...Object.values(env)].some((word) => word.includes('\0'))) throw new EbpError('USAGE', 'an argument or environment value contains a NUL byte');
      // The shell would take a first word with a leading dash as an option of `exec`.
      if (command[0]?.startsWith('-') === true) throw new EbpError('USAGE', 'the command starts with a dash');
      used = true;
      activate(preparedInput(command, env));
      return handle;
    },
    async discard() {
      used = true;
      await handle.stop(0);
    },
  };
}

interface OpenedSandbox {
  readonly handle: SandboxHandle;
  /** A prepared sandbox's command words (PREPARED_SHIM's input); the clock starts here. */
  readonly activate: (words: string) => void;
}

async function openSandbox(policy: SandboxPolicy, options: StartOptions, prepared: boolean): Promise<OpenedSandbox> {
  const engine = options.engine ?? (await defaultEngine());
  const id = newId();
  let started = Date.now();
  if (policy.network === 'nat' && engine.slirp === undefined) {
    throw new EbpError('NETWORK_SETUP_FAILED', 'network access was asked for, but slirp4netns is not installed', {
      hint: 'install it (sudo apt-get install slirp4netns) or run without --net',
    });
  }
  if ((policy.remoteFiles === undefined) !== (options.sftp === undefined)) {
    throw new EbpError('INTERNAL', 'remote files need an SFTP stream, and an SFTP stream needs remote files');
  }
  const files = policy.remoteFiles === undefined ? [] : filesPrefix(policy.remoteFiles.stage, filesTools());
  const dnsAddress = policy.network === 'nat' ? natAddresses(engine.natCidr).dns : undefined;
  // With a terminal, setsid makes it the command's controlling terminal.
  const ctty = options.terminal === true ? ['/usr/bin/setsid', '--ctty', '--'] : [];
  const isAborted = (): boolean => options.signal?.aborted === true;
  if (isAborted()) throw new EbpError('SANDBOX_SETUP_FAILED', 'the launch was cancelled before it started');
  // The host /etc files bwrap copies: opened here, closed right after the spawn (the child has
  // its own descriptors then), or on any failure before it.
  const copied = openHostEtcFiles(hostEtcEntries(policy.network));
  let plan: BwrapPlan;
  let cgroup: SandboxCgroup | undefined;
  let joinFiles: readonly string[] | undefined;
  try {
    const context = { layout: engine.layout, copiedEtc: copied.names, ...(dnsAddress === undefined ? {} : { dnsAddress }) };
    plan = prepared
      ? buildBwrapArgs(policy, { ...context, prepared: { prefix: ctty } })
      : buildBwrapArgs(policy.command[0] === undefined ? policy : { ...policy, command: [...ctty, ...policy.command] }, context);
    if (engine.cgroups !== undefined) cgroup = await engine.cgroups.create(`s-${id}`, policy.limits);
    // The launcher moves itself into the cgroup where it can (v1); elsewhere this process moves it.
    joinFiles = cgroup?.selfJoinFiles?.(engine.identity.switchUser ? engine.identity : undefined);
  } catch (error) {
    copied.close();
    await cgroup?.close();
    throw error;
  }

  const stdio: StdioOptions = [
    options.stdin ?? 'inherit', options.stdout ?? 'inherit', options.stderr ?? 'inherit',
    'pipe', 'pipe', 'pipe', 'pipe', 'pipe',
    options.sftp === undefined ? 'ignore' : 'pipe',
    prepared ? 'pipe' : 'ignore',
    ...plan.dataFiles.map(() => 'pipe' as const),
    ...copied.fds,
  ];
  // Order matters: the launcher joins the cgroup, then the files prefix makes its namespaces
  // and mounts, then bwrap; everything of the launch is in the cgroup.
  const bwrapArgv = [...rlimitPrefix(engine, policy), ...files, engine.bwrap, ...plan.args];
  let child: ChildProcess;
  try {
    const launcher = joinFiles === undefined ? [LAUNCHER_SHIM, 'ebp-launch'] : [SELF_JOINING_LAUNCHER_SHIM, 'ebp-launch', ...joinFiles, '--'];
    child = spawn('/bin/sh', ['-c', ...launcher, ...bwrapArgv], {
      stdio,
      env: { ...policy.env },
      // Threat: bwrap run as root with a user namespace maps the sandbox to host root.
      ...(engine.identity.switchUser ? { uid: engine.identity.uid, gid: engine.identity.gid } : {}),
    });
  } catch (error) {
    await cgroup?.close();
    throw new EbpError('SANDBOX_SETUP_FAILED', `cannot start bwrap: ${String(error)}`, { cause: error });
  } finally {
    copied.close();
  }

  const pipe = (fd: number): Readable & Writable => child.stdio[fd] as Readable & Writable;
  const lastFd = FD.firstData + plan.dataFiles.length;
  const control = (fd: number): boolean => (fd !== FD.sftp || options.sftp !== undefined) && (fd !== FD.command || prepared);
  for (let fd = FD.seccomp; fd < lastFd; fd += 1) if (control(fd)) pipe(fd).on('error', () => undefined);
  // A cut file channel explains a setup failure that follows it: bwrap's binds of the stage fail
  // (or sshfs does) once the FUSE connection is aborted, whatever status that gives.
  let sftpCut = false;
  if (options.sftp !== undefined) joinSftp(pipe(FD.sftp) as unknown as Duplex, options.sftp, { onCut: () => { sftpCut = true; } });
  pipe(FD.seccomp).end(engine.seccomp);
  plan.dataFiles.forEach((content, index) => pipe(FD.firstData + index).end(content));

  let sandboxPid: number | undefined;
  let commandPid: number | undefined;
  let ready = false;
  let timedOut = false;
  let stopped = false;
  let setupError: string | undefined;
  let nat: NatHandle | undefined;
  let lastStats: CgroupStats | undefined;
  let namespaces: number[] = [];

  const killAll = (): void => {
    // SIGKILL to bwrap's monitor: --die-with-parent then kills the sandbox's pid 1, and with it
    // the whole pid namespace; the cgroup kill at teardown catches anything else.
    child.kill('SIGKILL');
  };
  const fail = (error: unknown): void => {
    setupError ??= error instanceof EbpError ? error.message : String(error);
    killAll();
  };
  const cancelStart = (): void => {
    if (!ready) fail(new EbpError('SANDBOX_SETUP_FAILED', 'the launch was cancelled before it started'));
  };
  // The signal may have fired while the cgroup was being made.
  if (isAborted()) cancelStart();
  else options.signal?.addEventListener('abort', cancelStart, { once: true });

  // The launcher joins the cgroup first; only then may it exec bwrap.
  const pid = child.pid;
  if (pid === undefined) fail('bwrap could not be started');
  else if (joinFiles !== undefined) {
    let refused = '';
    pipe(FD.launch).on('data', (chunk: Buffer) => {
      if (refused.length < MAX_STATUS_TEXT) refused += chunk.toString();
    }).on('end', () => {
      if (refused !== '') fail(new EbpError('SANDBOX_SETUP_FAILED', `the launcher (uid ${engine.identity.uid}) could not move itself into the sandbox's cgroup: writing ${refused.slice(0, 512)} failed`));
    });
  } else if (cgroup === undefined) pipe(FD.launch).end('\n');
  else cgroup.addProcess(pid).then(() => pipe(FD.launch).end('\n'), fail);

  // Without NAT nothing needs doing between namespace creation and exec: release at once.
  if (policy.network !== 'nat') pipe(FD.block).end('x');
  // bwrap's status lines: the sandbox's pid once it exists, then the command's exit code as soon
  // as its monitor has it, before the sandbox's namespaces are torn down (see onExitCode below).
  let statusText = '';
  let exitCodeSeen = false;
  pipe(FD.status).on('data', (chunk: Buffer) => {
    if (statusText.length < MAX_STATUS_TEXT) statusText += chunk.toString();
    if (sandboxPid === undefined) {
      const match = /"child-pid"\s*:\s*(\d+)/.exec(statusText);
      if (match?.[1] !== undefined) {
        const sandbox = Number(match[1]);
        sandboxPid = sandbox;
        namespaces = holdNamespaces(sandbox);
        if (policy.network === 'nat' && engine.slirp !== undefined) {
          attachNat(sandbox, { slirp: engine.slirp, cidr: engine.natCidr, identity: engine.identity }).then((handle) => {
            nat = handle;
            pipe(FD.block).end('x');
          }, fail);
        }
      }
    }
    if (exitCodeSeen) return;
    const code = /"exit-code"\s*:\s*(\d+)/.exec(statusText)?.[1];
    if (code === undefined) return;
    exitCodeSeen = true;
    onExitCode(Number(code));
  });

  const readySeen = new Promise<void>((resolve) => {
    pipe(FD.ready).once('data', () => {
      ready = true;
      if (sandboxPid !== undefined) commandPid = firstChild(sandboxPid);
      resolve();
    });
  });

  let timer: NodeJS.Timeout | undefined;
  const startClock = (): void => {
    started = Date.now();
    if (policy.timeoutMs === undefined) return;
    timer = setTimeout(() => {
      timedOut = true;
      killAll();
    }, policy.timeoutMs);
  };
  if (!prepared) startClock();

  let announceEnd: (exit: SandboxExit) => void = () => undefined;
  const ended = new Promise<SandboxExit>((resolve) => {
    announceEnd = resolve;
  });
  /** How a sandbox whose command started ended, from its status and its cgroup's counters. */
  const describe = (raw: number, stats: CgroupStats | undefined): SandboxExit => {
    const durationMs = Date.now() - started;
    const base = stats === undefined ? { durationMs } : { durationMs, stats };
    if (timedOut) return { ...base, code: TIMEOUT_EXIT, reason: 'timeout', message: `timed out after ${policy.timeoutMs ?? 0} ms; the sandbox was killed` };
    if ((stats?.oomKills ?? 0) > 0) return { ...base, code: 137, reason: 'oom', message: `killed: out of memory (the sandbox's memory limit is ${formatSize(policy.limits.memoryBytes)}; raise it with --memory)` };
    if (stopped) return { ...base, code: raw, reason: 'stopped' };
    return { ...base, code: raw, reason: raw > 128 ? 'signaled' : 'exited' };
  };
  // The command is gone and bwrap's monitor has its status: say how it ended now. The sandbox's
  // pid 1 and the monitor still have to exit (the kernel tears the namespaces down first), then
  // the cgroup goes: about half a millisecond that the person need not wait for. The output still
  // comes first: whoever reports the status waits for the end of stdout and stderr.
  let early: SandboxExit | undefined;
  let closed = false;
  const onExitCode = (raw: number): void => {
    if (!ready) return;
    // Only a command killed by SIGKILL can have been the memory limit's victim, and only then is
    // the cgroup asked (its OOM count tells the two apart): any other status is told at once.
    const counters = cgroup;
    if (raw !== 128 + 9 || counters === undefined) {
      early = describe(raw, undefined);
      announceEnd(early);
      return;
    }
    void (async () => {
      let stats: CgroupStats | undefined;
      try {
        stats = await counters.stats();
      } catch {
        // The OOM count is best effort here as at the end.
      }
      if (closed) return;
      early = describe(raw, stats);
      announceEnd(early);
    })();
  };
  const exited = new Promise<SandboxExit>((resolveExited) => {
    let spawnError: Error | undefined;
    child.once('error', (error) => {
      spawnError = error;
    });
    child.once('exit', () => {
      // Our ends of the control descriptors: nothing reads them to EOF, so end them here or
      // 'close' (which waits for every stdio stream) never comes.
      // The SFTP stream too: the sandbox is gone, so is every user of its mount; sshfs gets EOF
      // and exits (the cgroup kill catches it otherwise).
      // Not the launcher's own pipe when it joins by itself: it says there why it could not (its
      // only writer, it ends at the launcher's exec or exit).
      for (let fd: number = FD.seccomp; fd < lastFd; fd += 1) if (control(fd) && fd !== FD.ready && (fd !== FD.launch || joinFiles === undefined)) pipe(fd).destroy();
      // The ready byte may still be unread: a command that ends at once exits before this
      // process has read it, and a destroyed pipe loses it (the launch then looked like a setup
      // failure). Read to its end instead: its last writers, bwrap's processes, are going.
      const readyPipe = pipe(FD.ready);
      if (ready) readyPipe.destroy();
      else setTimeout(() => { readyPipe.destroy(); }, READY_DRAIN_MS).unref();
    });
    child.once('close', (code, signal) => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      nat?.close();
      const finalStats = async (): Promise<void> => {
        if (cgroup === undefined) return;
        try {
          lastStats = await cgroup.stats();
        } catch {
          // stats are best effort; teardown is not
        }
      };
      // The teardown must finish before `exited`: the held namespaces released, the
      // cgroup removed.
      const tearDown = async (exit: SandboxExit): Promise<void> => {
        releaseNamespaces(namespaces);
        await cgroup?.close();
        resolveExited(exit);
      };
      // After what `ended` set off (the status sent to the person): in a daemon, after the quiet
      // moment that follows it (SandboxEngine.tearDownAfterMs).
      const later = (work: () => Promise<void>): void => {
        const run = (): void => { void work(); };
        if (engine.tearDownAfterMs > 0) setTimeout(run, engine.tearDownAfterMs);
        else setImmediate(run);
      };
      const settled = early;
      if (settled !== undefined) {
        // What the person was told stands; the record gets the final counters.
        later(async () => {
          await finalStats();
          await tearDown(lastStats === undefined ? settled : { ...settled, stats: lastStats });
        });
        return;
      }
      void (async () => {
        await finalStats();
        // How it ended is known only now: said at once, then the teardown.
        const resolve = (exit: SandboxExit): void => {
          announceEnd(exit);
          later(async () => { await tearDown(exit); });
        };
        const raw = code ?? (signal === null ? 1 : 128 + (signalNumber(signal) ?? 9));
        if (spawnError !== undefined || !ready) {
          const durationMs = Date.now() - started;
          const filesFailed = policy.remoteFiles !== undefined && (raw === FILES_SETUP_EXIT || sftpCut) && spawnError === undefined;
          const why = setupError ?? (filesFailed ? 'the person\'s files could not be mounted (the file channel from their side failed or was closed)' : undefined) ?? (spawnError === undefined ? `bwrap exited with status ${raw} before the command started (see its message above)` : `cannot run bwrap: ${spawnError.message}`);
          resolve({ ...(lastStats === undefined ? { durationMs } : { durationMs, stats: lastStats }), code: SETUP_EXIT, reason: 'setup-failed', message: `the sandbox could not be set up: ${why}` });
        } else {
          resolve(describe(raw, lastStats));
        }
      })();
    });
  });

  const handle: SandboxHandle = {
    id,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    ended,
    commandPid: () => commandPid,
    kill(sig) {
      if (commandPid === undefined) return false;
      try {
        // Negative pid: the command's whole process group inside the sandbox.
        process.kill(-commandPid, sig);
        return true;
      } catch {
        try {
          process.kill(commandPid, sig);
          return true;
        } catch {
          return false;
        }
      }
    },
    async stop(graceMs = STOP_GRACE_MS) {
      stopped = true;
      if (!handle.kill('SIGTERM')) killAll();
      const grace = setTimeout(killAll, graceMs);
      const result = await exited;
      clearTimeout(grace);
      return result;
    },
    async stats() {
      return cgroup === undefined ? undefined : cgroup.stats().catch(() => lastStats);
    },
  };
  options.signal?.addEventListener('abort', () => void handle.stop(), { once: true });

  await Promise.race([readySeen, exited]);
  return {
    handle,
    activate: (words) => {
      startClock();
      pipe(FD.command).end(words);
    },
  };
}

/**
 * The sandbox's namespaces whose end costs the kernel a wait or work queued for later: the mount
 * namespace (an RCU grace period inside the exit of its last process), the network and IPC
 * namespaces and the user namespace (their cleanup runs in kernel workers, which wait for
 * expedited RCU grace periods on the CPU they were queued on).
 */
const HELD_NAMESPACES = ['mnt', 'net', 'ipc', 'user'] as const;

/**
 * Opens the sandbox's namespaces (HELD_NAMESPACES) from outside, which keeps them alive after its
 * last process. Otherwise the sandbox's pid 1 and bwrap's monitor, which hold the command's
 * output pipes, end them in their own exits: the mount namespace's teardown makes that exit wait
 * for an RCU grace period (0.3 to 1 ms here), and the others' cleanup starts kernel workers that
 * take the CPU from those exits (traced with `perf sched`: the pipes' EOF came half a millisecond
 * after the command's end). Held, they end when these descriptors are closed, after the status
 * has gone out. One that cannot be opened (the sandbox is gone already, or this process may not
 * look into it) is not held: it ends as before.
 */
function holdNamespaces(pid: number): number[] {
  const held: number[] = [];
  for (const kind of HELD_NAMESPACES) {
    try {
      held.push(openSync(`/proc/${pid}/ns/${kind}`, 'r'));
    } catch {
      // not held: it ends with the sandbox
    }
  }
  return held;
}

/** Closes held namespaces on the thread pool: a teardown's wait blocks a worker, not the loop. */
function releaseNamespaces(fds: readonly number[]): void {
  for (const fd of fds) close(fd, () => undefined);
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return (osConstants.signals as Readonly<Record<string, number | undefined>>)[signal];
}

/** Start a sandbox and wait for it to end. */
export async function runSandbox(policy: SandboxPolicy, options: StartOptions = {}): Promise<SandboxExit> {
  const handle = await startSandbox(policy, options);
  return handle.exited;
}
