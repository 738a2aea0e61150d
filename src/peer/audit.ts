// The audit log: one JSON object per line for every launch request a peer made and what became of
// it. Appends are queued so records from concurrent launches never interleave, each record goes
// out in one O_APPEND write, and the file is opened per append so log rotation just works.
import { constants as fsConstants } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export type AuditDecision = 'allowed' | 'denied' | 'timeout' | 'trusted' | 'open';

export interface AuditRecord {
  /** ISO 8601 time of the request. */
  readonly time: string;
  /** The requesting peer's key fingerprint. */
  readonly peerId: string;
  readonly peerName: string;
  /** App id that was asked for. */
  readonly app: string;
  readonly decision: AuditDecision;
  readonly exitStatus?: number | undefined;
  readonly durationMs?: number | undefined;
  readonly peakMemoryBytes?: number | undefined;
  readonly oom?: boolean | undefined;
}

export const AUDIT_FILE = 'audit.log';

export function auditLogPath(stateDir: string): string {
  return join(stateDir, AUDIT_FILE);
}

const OPEN_FLAGS = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW;

export class AuditLog {
  private queue: Promise<unknown> = Promise.resolve();
  private checkedMode = false;

  constructor(readonly file: string) {}

  /** Appends one record as one line; resolves once it was written. */
  append(record: AuditRecord): Promise<void> {
    const line = Buffer.from(`${formatAuditRecord(record)}\n`, 'utf8');
    const run = this.queue.then(() => this.write(line));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async write(line: Buffer): Promise<void> {
    if (!this.checkedMode) await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    const handle = await open(this.file, OPEN_FLAGS, 0o600);
    try {
      if (!this.checkedMode) {
        // A log made before (or by hand) may be readable by others; it names peers and apps.
        const stats = await handle.stat();
        if ((stats.mode & 0o077) !== 0) await handle.chmod(0o600);
        this.checkedMode = true;
      }
      let offset = 0;
      while (offset < line.length) {
        const { bytesWritten } = await handle.write(line, offset, line.length - offset);
        offset += bytesWritten;
      }
    } finally {
      await handle.close();
    }
  }
}

/** The JSON line for a record: fixed key order, absent optional fields left out. */
export function formatAuditRecord(record: AuditRecord): string {
  const out: Record<string, unknown> = {
    time: record.time,
    peerId: record.peerId,
    peerName: record.peerName,
    app: record.app,
    decision: record.decision,
  };
  if (record.exitStatus !== undefined) out['exitStatus'] = record.exitStatus;
  if (record.durationMs !== undefined) out['durationMs'] = record.durationMs;
  if (record.peakMemoryBytes !== undefined) out['peakMemoryBytes'] = record.peakMemoryBytes;
  if (record.oom !== undefined) out['oom'] = record.oom;
  return JSON.stringify(out);
}
