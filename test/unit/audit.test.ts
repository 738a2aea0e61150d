import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AuditLog, auditLogPath, formatAuditRecord, type AuditRecord } from '../../src/peer/audit.js';

const root = mkdtempSync(join(tmpdir(), 'ebp-audit-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function record(index: number, extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: new Date(1_700_000_000_000 + index).toISOString(),
    peerId: `SHA256:${'x'.repeat(43)}`,
    peerName: `peer ${index} ${'y'.repeat(index % 7 === 0 ? 20_000 : 10)}`,
    app: 'org.example.App',
    decision: 'allowed',
    ...extra,
  };
}

test('concurrent appends produce whole lines, one per record, in call order', async () => {
  const file = auditLogPath(join(root, 'state-a'));
  const log = new AuditLog(file);
  const count = 200;
  await Promise.all(Array.from({ length: count }, (_, i) => log.append(record(i, { exitStatus: i, durationMs: i * 10 }))));
  const lines = readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.pop(), '', 'the file ends with a newline');
  assert.equal(lines.length, count);
  lines.forEach((line, i) => {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.equal(parsed['exitStatus'], i);
    assert.equal(parsed['peerName'], record(i).peerName);
  });
  assert.equal(statSync(file).mode & 0o777, 0o600);
});

test('two logs on the same file (two processes) still write whole lines', async () => {
  const file = join(root, 'shared.log');
  const one = new AuditLog(file);
  const two = new AuditLog(file);
  await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? one : two).append(record(i))));
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 100);
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line));
});

test('records have a fixed key order and leave out absent fields; newlines are escaped', () => {
  assert.equal(
    formatAuditRecord({ time: 't', peerId: 'p', peerName: 'evil\nname', app: 'a', decision: 'timeout', oom: false }),
    '{"time":"t","peerId":"p","peerName":"evil\\nname","app":"a","decision":"timeout","oom":false}',
  );
  assert.equal(
    formatAuditRecord({ time: 't', peerId: 'p', peerName: 'n', app: 'a', decision: 'trusted', exitStatus: 0, durationMs: 5, peakMemoryBytes: 1024, oom: true, durationMs2: 1 } as AuditRecord),
    '{"time":"t","peerId":"p","peerName":"n","app":"a","decision":"trusted","exitStatus":0,"durationMs":5,"peakMemoryBytes":1024,"oom":true}',
  );
});

test('an existing log readable by others is made private; a failed append does not block later ones', async () => {
  const file = join(root, 'loose.log');
  writeFileSync(file, '');
  chmodSync(file, 0o644);
  const log = new AuditLog(file);
  await log.append(record(1));
  assert.equal(statSync(file).mode & 0o777, 0o600);

  await log.append(record(2));
  assert.equal(readFileSync(file, 'utf8').trimEnd().split('\n').length, 2);

  // A directory where the log should be: that append fails, the next one (once fixed) works.
  const blocked = join(root, 'blocked.log');
  mkdirSync(blocked);
  const other = new AuditLog(blocked);
  await assert.rejects(other.append(record(1)), /EISDIR/);
  rmdirSync(blocked);
  await other.append(record(3));
  assert.equal((JSON.parse(readFileSync(blocked, 'utf8')) as AuditRecord).peerName, record(3).peerName);
});
