// A scratch folder for one test file, removed when its tests end: each call of the returned
// function names a new path inside it (not created), one per case.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

export function scratchPaths(prefix: string): () => string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  after(() => {
    rmSync(root, { recursive: true, force: true });
  });
  let count = 0;
  return () => {
    count += 1;
    return join(root, `case-${count}`);
  };
}
