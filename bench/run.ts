// `node dist/bench/run.js [--quick] [--only PARTS]` (or `npm run bench`): every benchmark in one
// run on this machine, each reported as a ratio against its anchor. Markdown table on stdout, all
// figures in bench/results/latest.json (latest-PARTS.json with --only). As root, sandboxes run as
// the ebp-sandbox user (ebp setup is run first; it is idempotent).
// PARTS: a comma list of spawn, cli, memory, cold, launch, x11, files; `sandbox` is the first four;
// `pool` and `web` (bench/pool.ts, bench/web.ts) run on their own.
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createEngine, type SandboxEngine } from '../src/sandbox/engine.js';
import { benchCli, type CliResult } from './cli.js';
import { benchLaunch, LAUNCH_TARGETS, launchDetail, launchSummaryRows, type LaunchResult } from './launch.js';
import { benchFiles, filesSummaryRows, type FilesResult } from './files.js';
import { benchMemory, type MemoryResult } from './memory.js';
import { benchSpawn, QUIET_MS, type SpawnResult } from './spawn.js';
import { round, summarize, type Summary } from './stats.js';
import { machineInfo } from './system.js';
import { benchX11, X11_TARGETS, x11Detail, x11SummaryRows, type X11BenchResult } from './x11.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const TARGETS = { spawn: 1.25, cli: 1.3, memoryMiB: 5, launch: LAUNCH_TARGETS, x11: X11_TARGETS } as const;

const PARTS = ['spawn', 'cli', 'memory', 'cold', 'launch', 'x11', 'files'] as const;
type Part = (typeof PARTS)[number];
const SANDBOX_PARTS: readonly Part[] = ['spawn', 'cli', 'memory', 'cold'];

interface Settings {
  readonly quick: boolean;
  readonly parts: ReadonlySet<Part>;
  /** Set by --only: the results go to latest-<parts>.json, so a partial run keeps the full one. */
  readonly only: string | undefined;
  readonly spawnIterations: number;
  readonly spawnWarmup: number;
  readonly hyperfineRuns: number;
  readonly hyperfineWarmup: number;
  readonly hyperfineRounds: number;
  readonly memoryCount: number;
  readonly netCount: number;
  readonly coldRuns: number;
  readonly launch: {
    readonly runs: number; readonly rounds: number; readonly warmup: number;
    readonly echoCount: number; readonly echoWarmup: number; readonly echoBlock: number;
    readonly bulkBytes: number; readonly bulkRuns: number; readonly bulkWarmup: number; readonly bulkPaths: 'all' | 'warm';
    readonly breakdownRuns: number;
  };
  readonly filesRuns: number;
}

const USAGE = 'usage: node dist/bench/run.js [--quick] [--only spawn,cli,memory,cold,launch,x11,files|sandbox|pool|web]\n';

function parseParts(text: string): Set<Part> {
  const parts = new Set<Part>();
  for (const word of text.split(',').map((item) => item.trim()).filter((item) => item !== '')) {
    if (word === 'sandbox') for (const part of SANDBOX_PARTS) parts.add(part);
    else if (word === 'pool' || word === 'web') continue; // bench/pool.ts and bench/web.ts, run at the end of this file
    else if ((PARTS as readonly string[]).includes(word)) parts.add(word as Part);
    else {
      process.stderr.write(`${USAGE}unknown part: ${word}\n`);
      process.exit(2);
    }
  }
  return parts;
}

function settings(argv: readonly string[]): Settings {
  let quick = false;
  let only: string | undefined;
  const unknown: string[] = [];
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index] ?? '';
    if (arg === '--quick') quick = true;
    else if (arg === '--only' && argv[index + 1] !== undefined) {
      only = argv[index + 1];
      index += 1;
    } else if (arg.startsWith('--only=')) only = arg.slice('--only='.length);
    else unknown.push(arg);
  }
  if (unknown.length > 0) {
    process.stderr.write(`${USAGE}unknown: ${unknown.join(' ')}\n`);
    process.exit(2);
  }
  const parts = only === undefined ? new Set<Part>(PARTS) : parseParts(only);
  const bulkBytes = 256 * 1024 ** 2;
  return quick
    ? {
      quick, parts, only, spawnIterations: 60, spawnWarmup: 10, hyperfineRuns: 10, hyperfineWarmup: 2, hyperfineRounds: 2, memoryCount: 100, netCount: 0, coldRuns: 5,
      launch: { runs: 20, rounds: 2, warmup: 3, echoCount: 500, echoWarmup: 50, echoBlock: 50, bulkBytes, bulkRuns: 5, bulkWarmup: 1, bulkPaths: 'warm', breakdownRuns: 10 },
      filesRuns: 1,
    }
    : {
      quick, parts, only, spawnIterations: 200, spawnWarmup: 20, hyperfineRuns: 40, hyperfineWarmup: 5, hyperfineRounds: 4, memoryCount: 100, netCount: 10, coldRuns: 15,
      launch: { runs: 80, rounds: 8, warmup: 3, echoCount: 2000, echoWarmup: 100, echoBlock: 100, bulkBytes, bulkRuns: 20, bulkWarmup: 3, bulkPaths: 'all', breakdownRuns: 30 },
      filesRuns: 7,
    };
}

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

const ms = (value: number): string => `${value.toFixed(1)} ms`;
const x = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? 'n/a' : `${value.toFixed(2)}x`);
const mib = (kib: number): string => `${(kib / 1024).toFixed(2)} MiB`;
const verdict = (ok: boolean | undefined): string => (ok === undefined ? 'n/a' : ok ? 'met' : 'MISSED');

export interface ColdResult {
  readonly runs: number;
  readonly nodeStartMs: Summary;
  readonly cliImportMs: Summary;
  readonly extraImportMs: Summary;
  readonly engineMs: Summary;
  readonly firstRunMs: Summary;
  readonly secondRunMs: Summary;
}

/** Fresh processes, each timing its own imports, engine and first two sandboxes (bench/cold.ts). */
function benchCold(runs: number): ColdResult {
  const samples: Record<string, number>[] = [];
  for (let index = 0; index < runs; index += 1) {
    const result = spawnSync(process.execPath, [join(ROOT, 'dist', 'bench', 'cold.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (result.status !== 0) throw new Error(`cold start probe failed: ${result.stderr}`);
    samples.push(JSON.parse(result.stdout) as Record<string, number>);
  }
  const column = (key: string): Summary => summarize(samples.map((sample) => sample[key] ?? Number.NaN));
  return {
    runs,
    nodeStartMs: column('nodeStartMs'),
    cliImportMs: column('cliImportMs'),
    extraImportMs: column('extraImportMs'),
    engineMs: column('engineMs'),
    firstRunMs: column('firstRunMs'),
    secondRunMs: column('secondRunMs'),
  };
}

interface Results {
  readonly spawn?: SpawnResult;
  readonly cli?: CliResult;
  readonly memory?: MemoryResult;
  readonly cold?: ColdResult;
  readonly launch?: LaunchResult;
  readonly x11?: X11BenchResult;
  readonly files?: FilesResult;
}

function table(results: Results): string {
  const lines: string[] = [];
  const row = (...cells: string[]): void => { lines.push(`| ${cells.join(' | ')} |`); };
  lines.push('| Benchmark | ebp | anchor | ratio | target | |');
  lines.push('|---|---|---|---|---|---|');
  const { spawn, cli, memory, cold, launch, x11, files } = results;
  if (spawn !== undefined) summarySpawn(spawn, row);
  if (cli !== undefined) summaryCli(cli, row);
  if (memory !== undefined) summaryMemory(memory, row);
  if (launch !== undefined) for (const cells of launchSummaryRows(launch)) row(...cells);
  if (x11 !== undefined) for (const cells of x11SummaryRows(x11)) row(...cells);
  if (files !== undefined) for (const cells of filesSummaryRows(files)) row(...cells);
  if (cli !== undefined) detailCli(cli, lines);
  if (spawn !== undefined) detailSpawn(spawn, lines);
  if (cold !== undefined) {
    lines.push('');
    lines.push(`Cold start of one process (${cold.runs} fresh processes, medians): Node itself ${ms(cold.nodeStartMs.median)}, importing the CLI's entry ${ms(cold.cliImportMs.median)}, the sandbox modules (loaded on use) ${ms(cold.extraImportMs.median)}, createEngine with the seccomp cache ${ms(cold.engineMs.median)}, first sandbox ${ms(cold.firstRunMs.median)}, second sandbox ${ms(cold.secondRunMs.median)}.`);
  }
  if (memory !== undefined) detailMemory(memory, lines);
  if (launch !== undefined) {
    lines.push('');
    lines.push(launchDetail(launch));
  }
  if (x11 !== undefined) {
    lines.push('');
    lines.push(x11Detail(x11));
  }
  if (files?.ebp !== undefined) {
    lines.push('');
    lines.push(`Files: \`ebp run --share\` (sshfs -o passive in the sandbox, jailed sftp-server on the person's side, over the launch's SSH connection) against OpenSSH's sshfs to a private sshd on loopback; the same script times the jobs inside each mount; times are medians of ${files.runs} alternating runs after one warm-up each, ratios the medians of the per-pair ratios. The sandbox's sshfs runs in its cgroup (1 CPU).`);
  }
  return lines.join('\n');
}

type Row = (...cells: string[]) => void;

function summarySpawn(spawn: SpawnResult, row: Row): void {
  row(
    `a. spawn-to-exit \`true\`, in-process, median (N=${spawn.iterations})`,
    ms(spawn.ebp.median), `raw bwrap ${ms(spawn.raw.median)}`, x(spawn.ratioMedian), `≤ ${TARGETS.spawn}x`, verdict(spawn.ratioMedian <= TARGETS.spawn),
  );
  row(`a. same, p90`, ms(spawn.ebp.p90), `raw bwrap ${ms(spawn.raw.p90)}`, x(spawn.ratioP90), `≤ ${TARGETS.spawn}x`, verdict(spawn.ratioP90 <= TARGETS.spawn));
}

function summaryCli(cli: CliResult, row: Row): void {
  const find = (name: string): CliResult['results'][number] | undefined => cli.results.find((result) => result.name === name);
  const ebpCli = find('ebp sandbox -- true');
  const node = find('node -e 0');
  const raw = find('raw bwrap (ebp argv)');
  const anchorText = node !== undefined && raw !== undefined ? `node -e 0 ${ms(node.ms.median)} + raw bwrap ${ms(raw.ms.median)} = ${ms(node.ms.median + raw.ms.median)}` : 'n/a';
  row(
    `b. \`ebp sandbox -- true\`, new process, median (hyperfine, ${cli.runs} runs in ${cli.rounds} rounds)`,
    ebpCli === undefined ? 'n/a' : ms(ebpCli.ms.median), anchorText, x(cli.ratioMedian), `≤ ${TARGETS.cli}x`,
    verdict(cli.ratioMedian === undefined ? undefined : cli.ratioMedian <= TARGETS.cli),
  );
  const anchorP90 = node !== undefined && raw !== undefined ? `${ms(node.ms.p90 + raw.ms.p90)} (sum of p90s)` : 'n/a';
  row(`b. same, p90`, ebpCli === undefined ? 'n/a' : ms(ebpCli.ms.p90), anchorP90, x(cli.ratioP90), `≤ ${TARGETS.cli}x`,
    verdict(cli.ratioP90 === undefined ? undefined : cli.ratioP90 <= TARGETS.cli));
}

function summaryMemory(memory: MemoryResult, row: Row): void {
  const perSession = memory.ebp.perSessionKiB;
  row(
    `c. memory per idle sandbox (${memory.ebp.count} × \`sleep 600\`)`,
    mib(perSession), `raw bwrap + sleep ${mib(memory.raw.perSessionKiB)}`, x(memory.ratio), `< ${TARGETS.memoryMiB} MiB`,
    verdict(perSession / 1024 < TARGETS.memoryMiB),
  );
}

function detailCli(cli: CliResult, lines: string[]): void {
  const ebpCli = cli.results.find((result) => result.name === 'ebp sandbox -- true');
  lines.push('');
  lines.push('Whole commands (hyperfine; ratio against `ebp sandbox -- true`):');
  lines.push('');
  lines.push('| Command | median | p90 | mean ± sd | ebp / this |');
  lines.push('|---|---|---|---|---|');
  for (const result of cli.results) {
    const ratio = ebpCli === undefined ? undefined : ebpCli.ms.median / result.ms.median;
    lines.push(`| ${result.name} | ${ms(result.ms.median)} | ${ms(result.ms.p90)} | ${result.ms.mean.toFixed(1)} ± ${result.stddevMs.toFixed(1)} ms | ${x(ratio)} |`);
  }
  for (const skip of cli.skipped) lines.push(`| ${skip.name} | left out: ${skip.reason} | | | |`);
  if (cli.notes.length > 0) lines.push('', ...cli.notes.map((note) => `- ${note}`));
}

function detailSpawn(spawn: SpawnResult, lines: string[]): void {
  lines.push('');
  lines.push(`Where ebp's in-process time goes (medians; ebp − raw bwrap = ${ms(spawn.ebp.median - spawn.raw.median)}):`);
  lines.push('');
  const phases = spawn.phases;
  if (phases !== undefined) {
    lines.push(`| step inside runSandbox (${phases.runs} runs, engine's CgroupManager wrapped) | median | p90 |`);
    lines.push('|---|---|---|');
    const step = (name: string, summary: Summary): void => { lines.push(`| ${name} | ${ms(summary.median)} | ${ms(summary.p90)} |`); };
    step('cgroup create (mkdir per hierarchy, limits)', phases.create);
    step('create → bwrap exited and closed (spawn, the launcher joins the cgroup by itself, set-up, exec, `true`)', phases.createToClose);
    step('cgroup stats + close (kill check, rmdir)', phases.teardown);
    step('close → `exited` resolves', phases.resolve);
    step('total', phases.total);
  } else {
    lines.push('- no cgroups in use');
  }
  if (spawn.launcher !== undefined) {
    lines.push('');
    lines.push(`The runner's launcher shim alone (raw bwrap behind it, released at once, no cgroup; same alternation): ${ms(spawn.launcher.raw.median)} = ${x(spawn.launcher.ratioToRaw)} of raw bwrap.`);
  }
  if (spawn.cgroupCreate !== undefined && spawn.cgroupClose !== undefined) {
    lines.push('');
    lines.push(`cgroup work with no process at all: create ${ms(spawn.cgroupCreate.median)}, stats + close ${ms(spawn.cgroupClose.median)} (medians).`);
  }
  const whatIfs = [
    [`ebp's code, each run after ${QUIET_MS} ms of quiet (a launch that comes alone)`, spawn.quiet],
    [`the daemon moves the launcher by pid (the way before), after ${QUIET_MS} ms of quiet`, spawn.byPidQuiet],
    ['the daemon moves the launcher by pid, back to back', spawn.byPid],
    ['the cgroup made before the run, removed after `exited` (a pool)', spawn.pooled],
  ] as const;
  if (whatIfs.some(([, result]) => result !== undefined)) {
    lines.push('');
    lines.push('What-ifs (ebp\'s runner with a wrapped CgroupManager, alternating with raw bwrap; the join by pid is the daemon\'s cgroup.procs writes while the launcher waits):');
    lines.push('');
    lines.push('| what-if | runs | ebp median | raw median | ratio median | ratio p90 | join by pid median / p90 |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const [name, result] of whatIfs) {
      if (result !== undefined) lines.push(`| ${name} | ${result.ebp.n} | ${ms(result.ebp.median)} | ${ms(result.raw.median)} | ${x(result.ratioMedian)} | ${x(result.ratioP90)} | ${result.join === undefined ? '–' : `${ms(result.join.median)} / ${ms(result.join.p90)}`} |`);
    }
  }
}

function detailMemory(memory: MemoryResult, lines: string[]): void {
  lines.push('');
  lines.push('Memory detail:');
  lines.push('');
  lines.push('| | sessions | processes | PSS sum | Node RSS growth | per session (PSS + growth) | charged to the sandbox cgroup, mean (incl. kernel memory) | start all | stop all |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const [name, sample] of [['ebp', memory.ebp], ['raw bwrap', memory.raw]] as const) {
    const procs = Object.entries(sample.processes).map(([proc, count]) => `${count} ${proc}`).join(', ');
    lines.push(`| ${name} | ${sample.count} | ${procs} | ${mib(sample.pssKiB)} | ${mib(sample.nodeRssGrowthKiB)} | ${mib(sample.perSessionKiB)} | ${sample.perSessionCgroupKiB === undefined ? 'n/a (no cgroup)' : mib(sample.perSessionCgroupKiB)} | ${ms(sample.startMs)} | ${ms(sample.stopMs)} |`);
  }
  if (memory.net !== undefined) {
    lines.push('');
    lines.push(`With --net, each sandbox adds one slirp4netns: ${mib(memory.net.perSessionPssKiB)} PSS each (${memory.net.count} measured).`);
  }
}

async function main(): Promise<void> {
  const options = settings(process.argv.slice(2));
  const began = performance.now();
  const wants = (part: Part): boolean => options.parts.has(part);
  if (options.parts.size === 0) return; // --only pool: bench/pool.ts below does all
  // bin/ebp runs the modules, not the bundles, when a bundle is older than them (a `tsc` after
  // the last `node scripts/bundle.mjs`): a bench would then time a start that no build ships.
  // The same for dist/bin/ebp, the `ebp` command, made from bin/ebp.
  const newest = Math.max(statSync(join(ROOT, 'dist', 'src', 'cli', 'main.js')).mtimeMs, statSync(join(ROOT, 'bin', 'ebp')).mtimeMs);
  if (['ebp.cjs', 'ebp-run.cjs', 'ebp-sandbox.cjs', join('bin', 'ebp')].some((name) => (statSync(join(ROOT, 'dist', name), { throwIfNoEntry: false })?.mtimeMs ?? 0) < newest)) {
    process.stderr.write('bench: the bundles are older than the compiled modules: rebuilding them (node scripts/bundle.mjs)\n');
    const bundled = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bundle.mjs')], { stdio: 'inherit' });
    if (bundled.status !== 0) throw new Error('node scripts/bundle.mjs failed');
  }
  if (process.getuid?.() === 0) {
    const setup = spawnSync(process.execPath, [join(ROOT, 'bin', 'ebp'), 'setup'], { encoding: 'utf8' });
    if (setup.status !== 0) throw new Error(`ebp setup failed: ${setup.stderr}${setup.stdout}`);
  }
  const machine = machineInfo();
  log(`${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, load ${machine.loadAverage.join(' ')}`);
  const results: { -readonly [K in keyof Results]: Results[K] } = {};
  let engine: SandboxEngine | undefined;
  if (SANDBOX_PARTS.some(wants)) {
    engine = await createEngine();
    log(`sandboxes run as ${engine.identity.name} (uid ${engine.identity.uid}); cgroups: ${engine.cgroups?.version ?? `none (${engine.cgroupProblem ?? ''})`}`);
  }
  if (engine !== undefined && wants('spawn')) {
    log(`a. in-process spawn-to-exit: ${options.spawnWarmup} warm-up + ${options.spawnIterations} runs each, alternating`);
    results.spawn = await benchSpawn(engine, { iterations: options.spawnIterations, warmup: options.spawnWarmup });
  }
  if (engine !== undefined && wants('cli')) {
    log(`b. whole commands with hyperfine: ${options.hyperfineRuns} runs each in ${options.hyperfineRounds} rounds (warm-up ${options.hyperfineWarmup} per round)`);
    results.cli = benchCli(engine, { root: ROOT, runs: options.hyperfineRuns, warmup: options.hyperfineWarmup, rounds: options.hyperfineRounds });
  }
  if (engine !== undefined && wants('memory')) {
    log(`c. memory: ${options.memoryCount} idle sandboxes, then as many raw bwrap${options.netCount > 0 ? `, then ${options.netCount} with --net` : ''}`);
    results.memory = await benchMemory(engine, { count: options.memoryCount, netCount: options.netCount });
  }
  if (wants('cold')) {
    log(`cold start breakdown: ${options.coldRuns} fresh processes`);
    results.cold = benchCold(options.coldRuns);
  }
  if (wants('files')) {
    results.files = await benchFiles({ root: ROOT, runs: options.filesRuns, log });
    log('files benchmark done');
  }
  if (wants('launch')) {
    results.launch = await benchLaunch({ root: ROOT, log, ...options.launch });
    log(`launch benchmarks done in ${results.launch.durationS} s`);
  }
  if (wants('x11')) {
    results.x11 = await benchX11({ root: ROOT, runs: options.quick ? 10 : 25, log });
    log(`x11 benchmarks done in ${results.x11.durationS} s`);
  }

  const output = table(results);
  process.stdout.write(`${output}\n`);
  const durationS = round((performance.now() - began) / 1000, 1);
  const loadAfter = machineInfo().loadAverage;
  log(`done in ${durationS} s; load average now ${loadAfter.join(' ')}`);

  const resultsDir = join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const suffix = options.only === undefined ? '' : `-${[...options.parts].join('-')}`;
  const file = join(resultsDir, `latest${suffix}.json`);
  writeFileSync(file, `${JSON.stringify({
    date: new Date().toISOString(),
    mode: options.quick ? 'quick' : 'full',
    parts: [...options.parts],
    durationS,
    machine,
    loadAverageAfter: loadAfter,
    sandboxUser: engine?.identity.name ?? null,
    cgroups: engine === undefined ? null : (engine.cgroups?.version ?? null),
    targets: TARGETS,
    ...results,
    table: output,
  }, null, 2)}\n`);
  log(`wrote ${file}`);
}

await main();

// The pool (bench/pool.ts): discovery convergence and daemon memory on test LANs; root only,
// and not when --only names another benchmark.
const onlyIndex = process.argv.indexOf('--only');
if (process.getuid?.() === 0 && (onlyIndex < 0 || process.argv[onlyIndex + 1] === 'pool')) await (await import('./pool.js')).main(process.argv.slice(2));
// Apps in the web page (bench/web.ts): Chromium against two daemons on 127.0.0.1; root only.
if (process.getuid?.() === 0 && (onlyIndex < 0 || process.argv[onlyIndex + 1] === 'web')) await (await import('./web.js')).main(process.argv.slice(2));
