// Facts about the machine and its processes for the benchmarks: what ran where, process trees,
// per-process memory (PSS from smaps_rollup) and a forced GC.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly bwrap: string;
  readonly hyperfine: string;
  readonly firejail: string;
  readonly lxc: string;
  readonly loadAverage: readonly number[];
}

function versionOf(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) return 'not available';
  return (result.stdout + result.stderr).trim().split('\n')[0] ?? '';
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpuModel: list[0]?.model ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    node: process.version,
    bwrap: versionOf('bwrap', ['--version']),
    hyperfine: versionOf('hyperfine', ['--version']),
    firejail: versionOf('firejail', ['--version']),
    lxc: versionOf('lxc-execute', ['--version']),
    loadAverage: loadavg().map((value) => Math.round(value * 100) / 100),
  };
}

export interface ProcEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly name: string;
}

function statusField(status: string, key: string): string {
  return new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
}

export function allProcesses(): ProcEntry[] {
  const result: ProcEntry[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let status: string;
    try {
      status = readFileSync(`/proc/${entry}/status`, 'utf8');
    } catch {
      continue;
    }
    result.push({ pid: Number(entry), ppid: Number(statusField(status, 'PPid')), name: statusField(status, 'Name') });
  }
  return result;
}

/** Every descendant of `root` (not root itself). */
export function descendants(root: number): ProcEntry[] {
  const all = allProcesses();
  const children = new Map<number, ProcEntry[]>();
  for (const proc of all) {
    const list = children.get(proc.ppid) ?? [];
    list.push(proc);
    children.set(proc.ppid, list);
  }
  const found: ProcEntry[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

export interface ProcMemory {
  readonly pssKiB: number;
  readonly rssKiB: number;
}

/** PSS and RSS of one process from /proc/PID/smaps_rollup; zero when it is gone or a zombie. */
export function processMemory(pid: number | 'self'): ProcMemory {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return { pssKiB: 0, rssKiB: 0 };
  }
  const field = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { pssKiB: field('Pss'), rssKiB: field('Rss') };
}

export const gc = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

export function rssKiB(): number {
  gc();
  return Math.round(process.memoryUsage().rss / 1024);
}
