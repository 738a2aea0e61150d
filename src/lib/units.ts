// Parsers for the human units on the command line and in config: sizes and durations.
import { EbpError } from './errors.js';

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/** "512M", "1.5GiB", "4096" → bytes. Units are binary (K = 1024), as in cgroup files. */
export function parseSize(text: string, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = match?.[2]?.toLowerCase() ?? '';
  const factor = SIZE_UNITS[unit];
  if (match?.[1] === undefined || factor === undefined) {
    throw new EbpError('USAGE', `invalid ${what} "${text}"`, {
      hint: 'use a number with an optional unit: 512K, 256M, 2G (binary units)',
    });
  }
  const bytes = Math.floor(Number(match[1]) * factor);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new EbpError('USAGE', `invalid ${what} "${text}": must be a positive size`);
  }
  return bytes;
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  '': 1000,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

/** "30s", "1.5m", "250ms", "10" (seconds) → milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/.exec(text);
  const factor = DURATION_UNITS[match?.[2] ?? ''];
  if (match?.[1] === undefined || factor === undefined) {
    throw new EbpError('USAGE', `invalid ${what} "${text}"`, {
      hint: 'use a number with a unit: 250ms, 30s, 5m, 1h (a bare number is seconds)',
    });
  }
  const ms = Math.round(Number(match[1]) * factor);
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new EbpError('USAGE', `invalid ${what} "${text}": must be positive`);
  }
  return ms;
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit] ?? 'B'}`;
}
