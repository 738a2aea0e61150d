// Apps the owner switched off in the web page: still in the catalogue, no longer shared. Kept in
// the state folder (withheld.json) so that a restart does not share them again.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Catalog } from '../catalog/catalog.js';
import { writeFileAtomic } from '../lib/atomic-file.js';

const FILE = 'withheld.json';

export class Withheld {
  readonly #path: string;
  readonly #ids: Set<string>;

  private constructor(path: string, ids: Set<string>) {
    this.#path = path;
    this.#ids = ids;
  }

  static open(stateDir: string): Withheld {
    const path = join(stateDir, FILE);
    let ids: string[] = [];
    try {
      const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
      if (Array.isArray(value)) ids = value.filter((id): id is string => typeof id === 'string');
    } catch {
      // none withheld yet
    }
    return new Withheld(path, new Set(ids));
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  async set(id: string, withheld: boolean): Promise<void> {
    if (withheld) this.#ids.add(id);
    else this.#ids.delete(id);
    await writeFileAtomic(this.#path, `${JSON.stringify([...this.#ids].sort())}\n`, { mode: 0o600 });
  }

  /** The catalogue peers see: without the withheld apps, with a version that says so. */
  view(catalog: Catalog): Catalog {
    if (this.#ids.size === 0) return catalog;
    const apps = catalog.apps.filter((app) => !this.#ids.has(app.id));
    const version = createHash('sha256').update(catalog.version).update([...this.#ids].sort().join('\n')).digest('hex').slice(0, catalog.version.length);
    return {
      apps, version, problems: catalog.problems, skipped: catalog.skipped,
      get: (id) => (this.#ids.has(id) ? undefined : catalog.get(id)),
    };
  }
}
