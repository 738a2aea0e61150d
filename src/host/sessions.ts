// The running launches on this host: who runs what since when, with live CPU and memory, and a
// way to stop each. One registry per daemon; the CLI, SSH and the web page read the same one.
import { EventEmitter } from 'node:events';
import { EbpError } from '../lib/errors.js';
import type { SessionInfo, SessionView } from '../lib/views.js';
import type { CgroupStats } from '../sandbox/cgroup/index.js';
import type { SandboxExit, SandboxHandle } from '../sandbox/runner.js';

export type { SessionInfo, SessionView } from '../lib/views.js';

export interface SessionEntry extends SessionInfo {
  readonly handle: SandboxHandle;
}


export interface SessionEvents {
  started: [SessionInfo];
  ended: [SessionInfo, SandboxExit];
}

function info(entry: SessionEntry): SessionInfo {
  const { id, peerId, peerName, app, startedAt, terminal } = entry;
  return { id, peerId, peerName, app, startedAt, terminal };
}

function view(entry: SessionEntry, stats: CgroupStats | undefined): SessionView {
  const base = info(entry);
  if (stats === undefined) return base;
  return { ...base, cpuSeconds: stats.cpuUsageUsec / 1e6, memoryBytes: stats.memoryCurrentBytes, memoryPeakBytes: stats.memoryPeakBytes };
}

export class Sessions extends EventEmitter<SessionEvents> {
  readonly #entries = new Map<string, SessionEntry>();
  readonly capacity: number;

  constructor(options: { capacity: number }) {
    super();
    this.capacity = options.capacity;
  }

  get count(): number {
    return this.#entries.size;
  }

  add(entry: SessionEntry): void {
    this.#entries.set(entry.id, entry);
    const summary = info(entry);
    this.emit('started', summary);
    void entry.handle.exited.then((exit) => {
      this.#entries.delete(entry.id);
      this.emit('ended', summary, exit);
    });
  }

  async list(): Promise<SessionView[]> {
    return Promise.all([...this.#entries.values()].map(async (entry) => view(entry, await entry.handle.stats())));
  }

  find(id: string): SessionEntry {
    const matches = [...this.#entries.values()].filter((entry) => entry.id === id || entry.id.startsWith(id));
    const [first] = matches;
    if (first === undefined || id === '') throw new EbpError('NOT_FOUND', `no running session "${id}"`, { hint: 'see `ebp sessions`' });
    if (matches.length > 1) throw new EbpError('USAGE', `"${id}" matches several sessions: ${matches.map((m) => m.id).join(', ')}`);
    return first;
  }

  async stop(id: string): Promise<SandboxExit> {
    return this.find(id).handle.stop();
  }

  /** Stops every session (daemon shutdown); resolves when all are gone. */
  async stopAll(graceMs = 2000): Promise<void> {
    await Promise.all([...this.#entries.values()].map((entry) => entry.handle.stop(graceMs)));
  }
}
