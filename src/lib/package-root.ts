// The installed package's own folder (the one with package.json), found from this module's place:
// dist/src/lib/ when loaded as modules, dist/ when loaded from the bundled CLI (dist/ebp.cjs).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let found: string | undefined;

export function packageRoot(): string {
  if (found !== undefined) return found;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'ebp'))) {
      found = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find ebp's package folder above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
