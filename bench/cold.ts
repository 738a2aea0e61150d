// One cold start, run as its own process by bench/run.ts (`node dist/bench/cold.js`): where the
// time of a fresh `ebp sandbox -- true` goes before and after Node itself is up. Prints one JSON
// line. Mirrors what the CLI does (imports, engine, one sandbox), split into measured steps.
const began = performance.now();
const { main } = await import('../src/cli/main.js');
const cliImported = performance.now();
const { createEngine } = await import('../src/sandbox/engine.js');
const { statePaths } = await import('../src/config/paths.js');
const { buildPolicy } = await import('../src/sandbox/request.js');
const { runSandbox } = await import('../src/sandbox/runner.js');
const imported = performance.now();
// As `ebp sandbox` does: the seccomp program from the cache in the state folder (compiled once).
const engine = await createEngine({ cacheDir: statePaths().stateDir });
const engineReady = performance.now();
const policy = buildPolicy({ command: ['true'] }, engine.identity);
const first = await runSandbox(policy, { engine, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
const firstDone = performance.now();
const second = await runSandbox(policy, { engine, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
const secondDone = performance.now();
if (first.code !== 0 || second.code !== 0) throw new Error(`sandbox failed: ${first.message ?? ''} ${second.message ?? ''}`);
// Imported only to count the CLI's module graph.
if (typeof main !== 'function') throw new Error('dist/src/cli/main.js has no main()');

process.stdout.write(`${JSON.stringify({
  /** performance.now() at the first line: Node's own start-up, from process start. */
  nodeStartMs: began,
  /** dist/src/cli/main.js and everything it imports (what `ebp` loads before doing anything). */
  cliImportMs: cliImported - began,
  /** The sandbox modules, which the CLI imports only when a command needs them. */
  extraImportMs: imported - cliImported,
  /** createEngine() with the state folder's seccomp cache, as the CLI: identity, cached seccomp, cgroup detection. */
  engineMs: engineReady - imported,
  /** The first sandbox of a process: cold JIT, lazy Node internals, cgroup bases. */
  firstRunMs: firstDone - engineReady,
  secondRunMs: secondDone - firstDone,
})}\n`);
