// Sandboxes made ahead of the launch that will use them. After a launch, the daemon prepares one
// more sandbox with the same policy (runner.ts prepareSandbox), so that the next launch of that
// app finds namespaces, mounts, cgroup and seccomp already in place and only hands over its
// command: most of a launch's set-up leaves the person's wait. Each spare still serves one launch
// only, and is never reused: every launch runs in a sandbox nobody ran anything in before.
import { accessSync, constants } from 'node:fs';
import { openPty, type Pty, type TerminalSize } from '../lib/pty.js';
import { PREPARED_SHELL } from './bwrap-args.js';
import type { SandboxEngine } from './engine.js';
import type { SandboxPolicy } from './policy.js';
import { prepareSandbox, type PreparedSandbox, type SandboxHandle } from './runner.js';

export interface SpareOptions {
  readonly engine: SandboxEngine;
  /** At most this many wait at once; the least recently asked for goes first. */
  readonly max?: number;
  /** A spare nobody asked for in this long is removed. */
  readonly idleMs?: number;
}

/** Each spare is a few processes (bwrap's two, the waiting shell) and a cgroup; a handful is plenty. */
export const DEFAULT_MAX_SPARES = 4;  // the config's default too (config/schema.ts share.spares)
export const DEFAULT_SPARE_IDLE_MS = 10 * 60 * 1000;

interface Spare {
  /** The environment it was made with: a launch may only add to it. */
  readonly env: Readonly<Record<string, string>>;
  /** A terminal spare's pseudo-terminal (the sandbox holds its slave end). */
  readonly pty: Pty | undefined;
  /** Undefined when it could not be made. */
  readonly prepared: Promise<PreparedSandbox | undefined>;
  timer: NodeJS.Timeout;
}

/**
 * What a spare must match: the whole policy but the command and the environment, which the
 * launch hands over. Its limits, mounts, home, network and timeout are the policy's own, so a
 * spare made for one peer's persistent home never serves another peer.
 */
export function spareKey(policy: SandboxPolicy, terminal: boolean): string {
  return JSON.stringify({ ...policy, command: [], env: {}, terminal });
}

/** A launch in a spare: its sandbox, and its terminal when it has one. */
export interface SpareStart {
  readonly handle: SandboxHandle;
  readonly pty?: Pty;
}

export class SpareSandboxes {
  readonly #engine: SandboxEngine;
  readonly #max: number;
  readonly #idleMs: number;
  /** In the order they were last asked for, oldest first. */
  readonly #spares = new Map<string, Spare>();
  #closed = false;

  constructor(options: SpareOptions) {
    this.#engine = options.engine;
    // The waiting shim needs /bin/sh (Essential everywhere): without it, every launch makes its own.
    this.#max = executable(PREPARED_SHELL) ? options.max ?? DEFAULT_MAX_SPARES : 0;
    this.#idleMs = options.idleMs ?? DEFAULT_SPARE_IDLE_MS;
  }

  /** Why no spare is ever made although some were asked for (`shell`: where the shim's is), or undefined. */
  static problem(asked: number, shell: string = PREPARED_SHELL): string | undefined {
    return asked > 0 && !executable(shell) ? `${shell} is missing (the shim of a sandbox made ahead runs in it); every launch makes its own sandbox` : undefined;
  }

  get size(): number {
    return this.#spares.size;
  }

  /**
   * Runs the policy's command in the spare made for it: with pipes for stdin, stdout and stderr,
   * or with `terminal`, in a terminal of that size. Undefined when there is none (or it cannot
   * serve this launch): start one the usual way then. A spare still being made is waited for:
   * it is further along than a new one would be.
   */
  async start(policy: SandboxPolicy, terminal?: TerminalSize): Promise<SpareStart | undefined> {
    const key = spareKey(policy, terminal !== undefined);
    const spare = this.#spares.get(key);
    if (spare === undefined) return undefined;
    this.#forget(key, spare);
    const prepared = await spare.prepared;
    if (prepared === undefined) return undefined;
    // The spare's environment must be part of the launch's: what the launch lacks cannot be taken away.
    const fits = Object.entries(spare.env).every(([name, value]) => policy.env[name] === value);
    if (!fits) {
      void this.#discard(spare, prepared);
      return undefined;
    }
    const added = Object.fromEntries(Object.entries(policy.env).filter(([name, value]) => spare.env[name] !== value));
    try {
      // The app's first look at its terminal finds the person's size.
      if (terminal !== undefined) spare.pty?.resize(terminal);
      const handle = prepared.start(policy.command, added);
      return spare.pty === undefined ? { handle } : { handle, pty: spare.pty };
    } catch {
      // It died while waiting, or a word cannot be passed: the usual path reports that.
      void this.#discard(spare, prepared);
      return undefined;
    }
  }

  /**
   * Makes a spare for this policy (with a terminal, or pipes) in the background, unless one is
   * there already.
   */
  refill(policy: SandboxPolicy, terminal = false): void {
    if (this.#closed || this.#max === 0) return;
    const key = spareKey(policy, terminal);
    const existing = this.#spares.get(key);
    if (existing !== undefined) {
      // Asked for again: it moves to the back of the eviction order, its idle time starts over.
      this.#spares.delete(key);
      this.#spares.set(key, existing);
      existing.timer.refresh();
      return;
    }
    while (this.#spares.size >= this.#max) {
      const [oldestKey, oldest] = this.#spares.entries().next().value as [string, Spare];
      this.#drop(oldestKey, oldest);
    }
    let pty: Pty | undefined;
    let stdio: { stdin: 'pipe' | number; stdout: 'pipe' | number; stderr: 'pipe' | number; terminal?: true } = { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' };
    try {
      if (terminal) {
        pty = openPty();
        stdio = { stdin: pty.slaveFd, stdout: pty.slaveFd, stderr: pty.slaveFd, terminal: true };
      }
    } catch {
      return;
    }
    const made = prepareSandbox(policy, { engine: this.#engine, ...stdio });
    const prepared = made.then(
      (sandbox) => {
        // Gone before use (killed from outside, say): no longer a spare.
        void sandbox.exited.then(() => {
          if (this.#spares.get(key)?.prepared === prepared) this.#drop(key, spare);
        });
        return sandbox;
      },
      () => {
        pty?.master.destroy();
        return undefined;
      },
    );
    // The sandbox holds the terminal's slave end now; this process keeps the master.
    void made.finally(() => pty?.closeSlave()).catch(() => undefined);
    const timer = setTimeout(() => { this.#drop(key, spare); }, this.#idleMs);
    timer.unref();
    const spare: Spare = { env: { ...policy.env }, pty, prepared, timer };
    this.#spares.set(key, spare);
  }

  /** Removes every spare; none is made after this. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#spares.entries()];
    for (const [key, spare] of all) this.#forget(key, spare);
    await Promise.all(all.map(async ([, spare]) => {
      const prepared = await spare.prepared;
      if (prepared !== undefined) await this.#discard(spare, prepared);
    }));
  }

  #forget(key: string, spare: Spare): void {
    clearTimeout(spare.timer);
    if (this.#spares.get(key) === spare) this.#spares.delete(key);
  }

  #drop(key: string, spare: Spare): void {
    this.#forget(key, spare);
    void spare.prepared.then((prepared) => (prepared === undefined ? undefined : this.#discard(spare, prepared)));
  }

  async #discard(spare: Spare, prepared: PreparedSandbox): Promise<void> {
    await prepared.discard();
    spare.pty?.master.destroy();
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
