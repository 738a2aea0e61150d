// Apps switched off in the page: gone from what peers see and may launch, kept across restarts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Catalog, SharedApp } from '../../src/catalog/catalog.js';
import { Withheld } from '../../src/daemon/withheld.js';

function catalogOf(ids: readonly string[]): Catalog {
  const apps = ids.map((id) => ({ id, name: id }) as unknown as SharedApp);
  return { apps, version: 'abcdef012345', problems: [], skipped: [], get: (id) => apps.find((app) => app.id === id) };
}

test('a withheld app is neither listed nor launchable, and the version changes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ebp-withheld-'));
  t.after(() => { rmSync(dir, { recursive: true, force: true }); });
  const catalog = catalogOf(['a', 'b', 'c']);
  const withheld = Withheld.open(dir);
  assert.equal(withheld.view(catalog), catalog, 'nothing withheld: the catalogue itself');
  await withheld.set('b', true);
  const view = withheld.view(catalog);
  assert.deepEqual(view.apps.map((app) => app.id), ['a', 'c']);
  assert.equal(view.get('b'), undefined);
  assert.equal(view.get('a')?.id, 'a');
  assert.notEqual(view.version, catalog.version, 'peers see that the catalogue changed');
  assert.equal(view.version.length, catalog.version.length);
  assert.equal(statSync(join(dir, 'withheld.json')).mode & 0o777, 0o600);

  const reopened = Withheld.open(dir);
  assert.ok(reopened.has('b'), 'kept across a restart');
  await reopened.set('b', false);
  assert.deepEqual(reopened.view(catalog).apps.map((app) => app.id), ['a', 'b', 'c']);
});
