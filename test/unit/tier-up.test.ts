// Optimizing sooner in a terminal relay (lib/tier-up.ts): the budget set at run time takes
// effect in this Node, seen through V8's own optimization status of a small hot function.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const tierUpModule = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'lib', 'tier-up.js')).href;

/**
 * Calls a small function CALLS times in a fresh process (after optimizeSooner() when SOONER),
 * waits up to a second for a concurrent compile to land, and says whether V8 optimized it.
 */
function optimizedAfter(calls: number, sooner: boolean): boolean {
  const script = `
    import { optimizeSooner } from ${JSON.stringify(tierUpModule)};
    function hot(x) { let s = 0; for (let i = 0; i < 4; i++) s += (x * i) % 7; return s; }
    if (${String(sooner)}) { optimizeSooner(); optimizeSooner(); }
    for (let i = 0; i < ${String(calls)}; i++) hot(i);
    const optimized = () => (%GetOptimizationStatus(hot) & 16) !== 0;
    let waited = 0;
    const check = () => {
      if (optimized() || waited >= 1000) { console.log(optimized() ? 'optimized' : 'not'); return; }
      waited += 20;
      setTimeout(check, 20);
    };
    check();
  `;
  const result = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(result.status, 0, result.stderr);
  // Nothing on stderr: V8 would complain there about a flag it does not know.
  assert.equal(result.stderr, '');
  return result.stdout.trim() === 'optimized';
}

test('200 calls: optimized only after optimizeSooner() (V8 needs about 1000 by default)', { skip: process.versions.node.split('.')[0] !== '20' ? 'the budget is set on Node 20 only' : false }, () => {
  assert.equal(optimizedAfter(200, false), false);
  assert.equal(optimizedAfter(200, true), true);
});

test('with enough calls V8 optimizes either way (the probe itself works)', () => {
  assert.equal(optimizedAfter(5000, false), true);
});
