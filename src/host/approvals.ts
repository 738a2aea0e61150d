// Owner approval of launches from keys this host does not trust: pending requests that the owner
// allows (once or always) or denies from the CLI or the web page; unanswered ones time out.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { EbpError } from '../lib/errors.js';
import type { PendingRequest } from '../lib/views.js';

export type Decision = 'allow' | 'always' | 'deny';
export type Outcome = Decision | 'timeout' | 'cancelled';

export type { PendingRequest } from '../lib/views.js';

interface Waiting {
  readonly request: PendingRequest;
  readonly settle: (outcome: Outcome) => void;
}

export interface ApprovalEvents {
  added: [PendingRequest];
  settled: [PendingRequest, Outcome];
}

export interface ApprovalOptions {
  readonly timeoutMs: number;
  /** Requests one key may make per minute (pending or not). */
  readonly ratePerMinute: number;
}

export class Approvals extends EventEmitter<ApprovalEvents> {
  readonly #pending = new Map<string, Waiting>();
  readonly #recent = new Map<string, number[]>();
  readonly #options: ApprovalOptions;

  constructor(options: ApprovalOptions) {
    super();
    this.#options = options;
  }

  list(): PendingRequest[] {
    return [...this.#pending.values()].map((waiting) => waiting.request);
  }

  /** Waits for the owner. Rejects with RATE_LIMITED when this key asks too often. */
  async request(input: Omit<PendingRequest, 'id' | 'time'>, options: { signal?: AbortSignal; onAdded?: (request: PendingRequest) => void } = {}): Promise<Outcome> {
    this.#checkRate(input.peerId);
    const request: PendingRequest = { ...input, id: randomBytes(3).toString('hex'), time: new Date().toISOString() };
    return new Promise<Outcome>((resolve) => {
      const settle = (outcome: Outcome): void => {
        if (!this.#pending.delete(request.id)) return;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.emit('settled', request, outcome);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        settle('timeout');
      }, this.#options.timeoutMs);
      const onAbort = (): void => {
        settle('cancelled');
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(request.id, { request, settle });
      options.onAdded?.(request);
      this.emit('added', request);
    });
  }

  decide(id: string, decision: Decision): PendingRequest {
    const waiting = this.#pending.get(id);
    if (waiting === undefined) {
      throw new EbpError('NOT_FOUND', `no pending request "${id}"`, { hint: 'see `ebp requests` for the pending ones; it may have timed out' });
    }
    waiting.settle(decision);
    return waiting.request;
  }

  /** Ends every pending request (daemon shutdown). */
  close(): void {
    for (const waiting of [...this.#pending.values()]) waiting.settle('cancelled');
  }

  #checkRate(peerId: string): void {
    const now = Date.now();
    const times = (this.#recent.get(peerId) ?? []).filter((time) => now - time < 60_000);
    if (times.length >= this.#options.ratePerMinute) {
      throw new EbpError('RATE_LIMITED', `too many launch requests from ${peerId}; try again in a minute`);
    }
    times.push(now);
    this.#recent.set(peerId, times);
  }
}
