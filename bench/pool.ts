// Benchmark: the pool on test LANs of network namespaces (test/harness/testnet.ts), as root.
//
// 1. Convergence: N daemons (3, 10, 30) started at once, each in a host of its own on one bridge;
//    how long until every daemon has seen every other one, read from the daemons' own JSON log
//    lines and their timestamps (no CLI polling, which would load the 2 cores further): when
//    each daemon's name was established (`discovery.established`: probing done, first
//    announcement out) and when it logged `peer-added` for each other one. Reported from the spawn
//    of the first daemon (dominated by N Node start-ups on the cores), from the moment the last
//    one was established, and per pair: max(established i, established j) → i sees j. There is
//    no other implementation to compare with, so the anchor is the mDNS schedule itself (RFC 6762
//    §8): a new responder probes three times 250 ms apart (0.75 s, after a random 0-250 ms delay)
//    before its first announcement, and a browser that starts later sends its first query within
//    about a second — about 0.75 s + 1 s. Probing is inside "established", so the comparable
//    figure is 0.75 s + the pair latency.
// 2. Memory of one daemon (RSS and PSS from /proc/PID/smaps_rollup) with 29 peers known (a LAN of
//    30) against 0 peers known (30 daemons too, each on a link of its own: same process count,
//    so the same sharing of Node's pages in PSS), both measured at the same age.
//
//   node dist/bench/pool.js [--quick]     (--quick: 3 and 10 hosts, memory with 10)
// Figures on stdout (Markdown) and in bench/results/pool.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { createTestLan, ensureSetup, processMemoryKiB, sleep, testLanSkipReason, type LogEvent, type TestDaemon, type TestLan } from '../test/harness/testnet.js';
import { round, summarize, type Summary } from './stats.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** mDNS probing (3 × 250 ms) + up to about 1 s until the first announcement or query answer. */
const PROBING_S = 0.75;
const ANCHOR_S = PROBING_S + 1;
/** Memory is read this long after the last daemon said it was up. */
const MEMORY_AGE_MS = 10_000;
const CONVERGE_TIMEOUT_MS = 60_000;

export interface ConvergenceResult {
  readonly hosts: number;
  /** First spawn → the last daemon's name established (probing done, announced). */
  readonly allUpS: number;
  /** First spawn → the last missing peer-added (every daemon sees every other). */
  readonly meshS: number;
  /** Last daemon established → mesh complete. */
  readonly lastUpToMeshS: number;
  /** Per ordered pair (i, j): max(established i, established j) → i logs peer-added j (0 when known before). */
  readonly pairS: Summary;
  readonly complete: boolean;
  readonly missing: number;
  /** peer-removed lines while converging (should be 0). */
  readonly removals: number;
  /**
   * One more daemon started once the pool has settled (no start-up storm on the cores): from its
   * name established → every other daemon has logged it, and → it has logged every other one.
   */
  readonly join: { readonly seenByAllS: number; readonly seesAllS: number } | undefined;
  /** Load average (1 min) when the run ended. */
  readonly load: number;
}

export interface MemorySide {
  readonly daemons: number;
  readonly peersKnown: number;
  readonly ageS: number;
  readonly rssKiB: Summary;
  readonly pssKiB: Summary;
}

export interface PoolResult {
  readonly convergence: ConvergenceResult[];
  readonly memory: { readonly without: MemorySide; readonly with: MemorySide } | undefined;
  readonly anchorS: number;
  readonly durationS: number;
}

function log(message: string): void {
  process.stderr.write(`[bench pool] ${message}\n`);
}

/** A log line's own timestamp (the daemon's clock: the same machine), else its arrival here. */
function timeOf(entry: LogEvent): number {
  const time = typeof entry['time'] === 'string' ? Date.parse(entry['time']) : Number.NaN;
  return Number.isFinite(time) ? time : entry.at;
}

/** When the daemon's name was established (its first announcement). */
function establishedAt(daemon: TestDaemon): number {
  const entry = daemon.events.find((event) => event.event === 'discovery.established');
  return entry === undefined ? daemon.startedAt : timeOf(entry);
}

/** When `observer` first logged peer-added for `name`. */
function firstSeen(observer: TestDaemon, name: string): number | undefined {
  const entry = observer.events.find((event) => event.event === 'peer-added' && event['name'] === name);
  return entry === undefined ? undefined : timeOf(entry);
}

async function startAll(lan: TestLan): Promise<{ daemons: TestDaemon[]; spawnedAt: number }> {
  const spawnedAt = Date.now();
  const daemons = await Promise.all(lan.hosts.map((host) => lan.startDaemon(host, { name: `p${host.index}`, wait: false })));
  await Promise.all(daemons.map((daemon) => daemon.ready(120_000)));
  return { daemons, spawnedAt };
}

function memorySide(daemons: readonly TestDaemon[], peersKnown: number, ageS: number): MemorySide {
  const samples = daemons.map((daemon) => processMemoryKiB(daemon.pid));
  return { daemons: daemons.length, peersKnown, ageS, rssKiB: summarize(samples.map((s) => s.rssKiB)), pssKiB: summarize(samples.map((s) => s.pssKiB)) };
}

async function converge(hosts: number, withMemory: boolean): Promise<{ convergence: ConvergenceResult; memory: MemorySide | undefined }> {
  const lan = await createTestLan({ hosts });
  try {
    const { daemons, spawnedAt } = await startAll(lan);
    const readyAt = Math.max(...daemons.map((daemon) => daemon.startedAt));
    const until = readyAt + CONVERGE_TIMEOUT_MS;
    const seesAll = (daemon: TestDaemon): boolean => daemons.every((other) => other === daemon || firstSeen(daemon, other.wantedName) !== undefined);
    while (Date.now() < until && !daemons.every(seesAll)) await sleep(50);
    const up = daemons.map(establishedAt);
    const lastUp = Math.max(...up);
    const pairs: number[] = [];
    let meshAt = 0;
    let missing = 0;
    daemons.forEach((observer, i) => {
      daemons.forEach((other, j) => {
        if (i === j) return;
        const seen = firstSeen(observer, other.wantedName);
        if (seen === undefined) {
          missing += 1;
          return;
        }
        meshAt = Math.max(meshAt, seen);
        pairs.push(Math.max(0, seen - Math.max(up[i] ?? 0, up[j] ?? 0)) / 1000);
      });
    });
    const complete = missing === 0;
    const base = {
      hosts,
      allUpS: round((lastUp - spawnedAt) / 1000, 2),
      meshS: complete ? round((meshAt - spawnedAt) / 1000, 2) : Number.NaN,
      lastUpToMeshS: complete ? round(Math.max(0, meshAt - lastUp) / 1000, 2) : Number.NaN,
      pairS: summarize(pairs),
      complete,
      missing,
      removals: daemons.reduce((sum, daemon) => sum + daemon.events.filter((event) => event.event === 'peer-removed').length, 0),
    };
    const convergence: ConvergenceResult = { ...base, join: undefined, load: 0 };
    log(`${hosts} hosts: all established after ${convergence.allUpS} s, everyone sees everyone after ${convergence.meshS} s (${convergence.lastUpToMeshS} s after the last was established); pair latency median ${convergence.pairS.median.toFixed(3)} s, max ${convergence.pairS.max.toFixed(3)} s${complete ? '' : `; INCOMPLETE, ${missing} sightings missing`}`);
    let memory: MemorySide | undefined;
    if (withMemory) {
      const first = lan.host(1);
      const listed = (await lan.peers(first)).length;
      if (listed !== hosts - 1) log(`warning: ebp peers on ${first.ns} lists ${listed} peers, not ${hosts - 1}`);
      await sleep(Math.max(0, readyAt + MEMORY_AGE_MS - Date.now()));
      memory = memorySide(daemons, hosts - 1, round((Date.now() - readyAt) / 1000, 1));
    }
    const join = complete ? await joinOne(lan, daemons) : undefined;
    if (join !== undefined) log(`one more daemon: seen by all ${join.seenByAllS} s after it was established, saw all after ${join.seesAllS} s`);
    return { convergence: { ...convergence, join, load: round(loadavg()[0] ?? 0, 1) }, memory };
  } finally {
    await lan.destroy();
  }
}

/** A newcomer joins a settled pool. */
async function joinOne(lan: TestLan, daemons: readonly TestDaemon[]): Promise<{ seenByAllS: number; seesAllS: number } | undefined> {
  const host = lan.addHost();
  await lan.linksReady();
  const newcomer = await lan.startDaemon(host, { name: `p${host.index}` });
  const until = Date.now() + 20_000;
  const done = (): boolean => daemons.every((daemon) => firstSeen(daemon, newcomer.wantedName) !== undefined && firstSeen(newcomer, daemon.wantedName) !== undefined);
  while (Date.now() < until && !done()) await sleep(50);
  if (!done()) return undefined;
  const up = establishedAt(newcomer);
  const seenBy = Math.max(...daemons.map((daemon) => firstSeen(daemon, newcomer.wantedName) ?? Number.NaN));
  const sees = Math.max(...daemons.map((daemon) => firstSeen(newcomer, daemon.wantedName) ?? Number.NaN));
  return { seenByAllS: round(Math.max(0, seenBy - up) / 1000, 3), seesAllS: round(Math.max(0, sees - up) / 1000, 3) };
}

/** The same number of daemons, each alone on its link: 0 peers known. */
async function isolated(hosts: number): Promise<MemorySide> {
  const lan = await createTestLan({ hosts });
  try {
    for (const host of lan.hosts) lan.detach(host);
    const { daemons } = await startAll(lan);
    const lastUp = Math.max(...daemons.map((daemon) => daemon.startedAt));
    await sleep(Math.max(0, lastUp + MEMORY_AGE_MS - Date.now()));
    const strays = daemons.reduce((sum, daemon) => sum + daemon.seen().size, 0);
    if (strays > 0) throw new Error(`isolated daemons saw ${strays} peers`);
    return memorySide(daemons, 0, round((Date.now() - lastUp) / 1000, 1));
  } finally {
    await lan.destroy();
  }
}

export async function benchPool(options: { quick?: boolean } = {}): Promise<PoolResult> {
  const began = Date.now();
  const sizes = options.quick === true ? [3, 10] : [3, 10, 30];
  const memoryHosts = sizes[sizes.length - 1] ?? 3;
  ensureSetup();
  log(`memory baseline: ${memoryHosts} daemons, each alone on its link`);
  const without = await isolated(memoryHosts);
  const convergence: ConvergenceResult[] = [];
  let withPeers: MemorySide | undefined;
  for (const hosts of sizes) {
    log(`convergence: ${hosts} daemons started at once`);
    const result = await converge(hosts, hosts === memoryHosts);
    convergence.push(result.convergence);
    withPeers ??= result.memory;
  }
  return { convergence, memory: withPeers === undefined ? undefined : { without, with: withPeers }, anchorS: ANCHOR_S, durationS: round((Date.now() - began) / 1000, 1) };
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

export function poolTable(result: PoolResult): string {
  const lines: string[] = [];
  lines.push('| hosts | first spawn → all established | first spawn → everyone sees everyone | last established → everyone sees everyone | pair latency: both established → seen (median / p90 / max) | newcomer established → seen by all / sees all | probing + newcomer seen by all | anchor: mDNS probing + first announcement/query | ratio | load (1 min) |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of result.convergence) {
    const discovery = row.join === undefined ? Number.NaN : PROBING_S + row.join.seenByAllS;
    const s = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)} s` : 'n/a');
    const join = row.join === undefined ? 'n/a' : `${row.join.seenByAllS.toFixed(3)} / ${row.join.seesAllS.toFixed(3)} s`;
    lines.push(`| ${row.hosts} | ${s(row.allUpS)} | ${row.complete ? s(row.meshS) : `incomplete (${row.missing} missing)`} | ${s(row.lastUpToMeshS)} | ${row.pairS.median.toFixed(2)} / ${row.pairS.p90.toFixed(2)} / ${row.pairS.max.toFixed(2)} s | ${join} | ${s(discovery)} | ≈ ${result.anchorS.toFixed(2)} s | ${Number.isFinite(discovery) ? `${(discovery / result.anchorS).toFixed(2)}x` : 'n/a'} | ${row.load} |`);
  }
  if (result.memory !== undefined) {
    const { without, with: withPeers } = result.memory;
    lines.push('');
    lines.push('| daemon memory (median over the daemons) | daemons | peers known | age | RSS | PSS |');
    lines.push('|---|---|---|---|---|---|');
    for (const [label, side] of [['alone on its link', without], ['on one LAN', withPeers]] as const) {
      lines.push(`| ${label} | ${side.daemons} | ${side.peersKnown} | ${side.ageS} s | ${mib(side.rssKiB.median)} (${mib(side.rssKiB.min)}–${mib(side.rssKiB.max)}) | ${mib(side.pssKiB.median)} (${mib(side.pssKiB.min)}–${mib(side.pssKiB.max)}) |`);
    }
    const perPeer = (withPeers.pssKiB.median - without.pssKiB.median) / Math.max(1, withPeers.peersKnown);
    lines.push('');
    lines.push(`Difference: RSS ${mib(withPeers.rssKiB.median - without.rssKiB.median)}, PSS ${mib(withPeers.pssKiB.median - without.pssKiB.median)} per daemon, ≈ ${perPeer.toFixed(0)} KiB PSS per known peer.`);
  }
  return lines.join('\n');
}

export async function main(argv: readonly string[]): Promise<void> {
  const skip = testLanSkipReason();
  if (skip !== undefined) {
    log(`skipped: ${skip}`);
    return;
  }
  const result = await benchPool({ quick: argv.includes('--quick') });
  const table = poolTable(result);
  process.stdout.write(`\nPool (${result.durationS} s):\n\n${table}\n`);
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'pool.json');
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), ...result, table }, null, 2)}\n`);
  log(`wrote ${file}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main(process.argv.slice(2));
