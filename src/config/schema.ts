// The configuration file's shape, its defaults, and a small hand-written validator. Every problem
// becomes one line naming the key path, the value found and what is allowed; all problems of a
// file are reported together in one CONFIG_INVALID error.
import { hostname, userInfo } from 'node:os';
import { EbpError } from '../lib/errors.js';
import { parseDuration, parseSize } from '../lib/units.js';

export type ApprovalPolicy = 'ask' | 'trusted-only' | 'open';

export const APPROVAL_POLICIES: readonly ApprovalPolicy[] = ['ask', 'trusted-only', 'open'];

/** Sandbox settings of one launch: [defaults], overridden per app by [apps."ID"]. */
export interface AppSettings {
  readonly network: boolean;
  readonly memoryBytes: number;
  readonly cpus: number;
  readonly pids: number;
  readonly persistentHome: boolean;
}

/** An app defined in the configuration rather than by a desktop file ([[extra_apps]]). */
export interface ExtraAppConfig {
  readonly id: string;
  readonly name: string;
  /** Exec line, desktop-entry style. */
  readonly exec: string;
  readonly terminal: boolean;
  /** '' when not given. */
  readonly comment: string;
  /** Icon name or absolute path; '' when not given. */
  readonly icon: string;
  readonly mimeTypes: readonly string[];
  readonly categories: readonly string[];
}

export interface Config {
  /** Display name of this machine. */
  readonly name: string;
  /** SSH port peers connect to; 0 picks a free one. */
  readonly port: number;
  /** The page; `display`: the X display for "Open on this desktop" ('' = the daemon's DISPLAY). */
  readonly ui: { readonly enabled: boolean; readonly port: number; readonly display: string };
  readonly discovery: { readonly enabled: boolean; readonly interfaces: readonly string[] };
  readonly approval: { readonly policy: ApprovalPolicy; readonly timeoutMs: number; readonly rateLimit: number };
  /** `spares`: sandboxes kept made ahead for the next launches of recent apps (0 = none). */
  readonly share: { readonly apps: 'all' | readonly string[]; readonly deny: readonly string[]; readonly spares: number };
  readonly defaults: AppSettings;
  /** Per-app overrides of [defaults], by app id (an own-property record; use {@link appSettings}). */
  readonly apps: Readonly<Record<string, Partial<AppSettings>>>;
  readonly extraApps: readonly ExtraAppConfig[];
}

export const DEFAULT_PORT = 20101;
export const DEFAULT_UI_PORT = 20102;
export const NAME_MAX_LENGTH = 63;

/** The settings of one app: [defaults] with its [apps."ID"] overrides applied. */
export function appSettings(config: Config, appId: string): AppSettings {
  const overrides = Object.hasOwn(config.apps, appId) ? config.apps[appId] : undefined;
  return { ...config.defaults, ...overrides };
}

// C0 and C1 controls, DEL, line/paragraph separators, bidi embedding/override/isolate controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** Why text is not a usable display name (1..63 printable characters), or undefined if it is. */
export function displayNameProblem(text: string): string | undefined {
  const length = Array.from(text).length;
  if (length === 0) return 'must not be empty';
  if (length > NAME_MAX_LENGTH) return `must be at most ${NAME_MAX_LENGTH} characters (got ${length})`;
  if (CONTROL.test(text)) return 'must not contain control characters';
  if (text.trim() !== text) return 'must not start or end with spaces';
  return undefined;
}

/** user@hostname, as people know the machine and its owner. */
function defaultName(): string {
  let host = 'ebp';
  let user = process.env['USER'] ?? '';
  try {
    host = hostname();
    user = userInfo().username;
  } catch {
    // keep the fallbacks
  }
  const full = user === '' ? host : `${user}@${host}`;
  const name = Array.from(full.trim()).slice(0, NAME_MAX_LENGTH).join('').trim();
  return displayNameProblem(name) === undefined ? name : 'ebp';
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}

export const DEFAULT_CONFIG: Config = deepFreeze({
  name: defaultName(),
  port: DEFAULT_PORT,
  ui: { enabled: true, port: DEFAULT_UI_PORT, display: '' },
  discovery: { enabled: true, interfaces: [] },
  approval: { policy: 'ask', timeoutMs: 60_000, rateLimit: 5 },
  share: { apps: 'all', deny: [], spares: 4 },
  defaults: { network: false, memoryBytes: 1024 ** 3, cpus: 1, pids: 256, persistentHome: false },
  apps: {},
  extraApps: [],
});

// ---------------------------------------------------------------------------------------------
// A tiny schema library: fields check one value and report problems with their key path.

type Path = readonly (string | number)[];

export interface ConfigIssue {
  /** Key path such as `approval.policy` or `extra_apps[1].exec`. */
  readonly path: string;
  readonly message: string;
}

const BAD: unique symbol = Symbol('bad');
type Checked<T> = T | typeof BAD;

interface Field<T> {
  /** What is allowed, for messages: "an integer from 0 to 65535". */
  readonly expected: string;
  check(value: unknown, path: Path, issues: ConfigIssue[]): Checked<T>;
}

type FieldType<F> = F extends Field<infer T> ? T : never;
type Shape = Readonly<Record<string, Field<unknown>>>;

function formatKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

export function formatPath(path: Path): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? formatKey(segment) : `.${formatKey(segment)}`;
  }
  return out;
}

function where(path: Path): string {
  if (path.length === 0) return 'at the top level';
  return typeof path[path.length - 1] === 'number' ? `in \`${formatPath(path)}\`` : `in [${formatPath(path)}]`;
}

function isTable(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && Object.prototype.toString.call(value) === '[object Object]';
}

function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max).join('')}…`;
}

/** A value as it would read in TOML, shortened. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(truncate(value, 60));
  if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value instanceof Date) return 'a date';
  if (Array.isArray(value)) {
    const inner = value.map((item: unknown) => describeValue(item)).join(', ');
    return `[${truncate(inner, 60)}]`;
  }
  if (isTable(value)) return 'a table';
  return typeof value;
}

function report(issues: ConfigIssue[], path: Path, value: unknown, expected: string): typeof BAD {
  const at = formatPath(path);
  issues.push({ path: at, message: `\`${at}\` = ${describeValue(value)}: expected ${expected}` });
  return BAD;
}

/** A field from a test that returns the parsed value or undefined when the value is not allowed. */
function simple<T>(expected: string, parse: (value: unknown) => T | undefined): Field<T> {
  return {
    expected,
    check(value, path, issues) {
      const parsed = parse(value);
      return parsed === undefined ? report(issues, path, value, expected) : parsed;
    },
  };
}

const bool = simple('true or false', (value) => (typeof value === 'boolean' ? value : undefined));

function integer(min: number, max: number): Field<number> {
  return simple(`an integer from ${min} to ${max}`, (value) =>
    typeof value === 'bigint' && value >= BigInt(min) && value <= BigInt(max) ? Number(value) : undefined,
  );
}

function decimal(min: number, max: number): Field<number> {
  return simple(`a number from ${min} to ${max}`, (value) => {
    const number = typeof value === 'bigint' ? Number(value) : value;
    return typeof number === 'number' && Number.isFinite(number) && number >= min && number <= max ? number : undefined;
  });
}

function text(expected: string, valid: (value: string) => boolean): Field<string> {
  return simple(expected, (value) => (typeof value === 'string' && valid(value) ? value : undefined));
}

function plainText(min: number, max: number, what: string): Field<string> {
  return text(`${what} of ${min} to ${max} characters without control characters`, (value) => {
    const length = Array.from(value).length;
    return length >= min && length <= max && !CONTROL.test(value);
  });
}

function oneOf<const T extends string>(values: readonly T[]): Field<T> {
  return simple(`one of ${values.map((value) => JSON.stringify(value)).join(', ')}`, (value) =>
    values.find((allowed) => allowed === value),
  );
}

function size(min: number): Field<number> {
  return simple(`a size of at least ${min / 1024 ** 2}M, such as "512M" or "2G" (binary units), or a number of bytes`, (value) => {
    let bytes: number;
    if (typeof value === 'bigint') bytes = Number(value);
    else if (typeof value === 'string') {
      try {
        bytes = parseSize(value);
      } catch {
        return undefined;
      }
    } else return undefined;
    return Number.isSafeInteger(bytes) && bytes >= min ? bytes : undefined;
  });
}

function duration(minMs: number, maxMs: number): Field<number> {
  return simple(`a duration from ${minMs / 1000}s to ${maxMs / 3_600_000}h, such as "90s" or "5m" (a bare number is seconds)`, (value) => {
    if (typeof value !== 'string' && typeof value !== 'bigint') return undefined;
    let ms: number;
    try {
      ms = parseDuration(String(value));
    } catch {
      return undefined;
    }
    return ms >= minMs && ms <= maxMs ? ms : undefined;
  });
}

function list<T>(item: Field<T>, max: number): Field<T[]> {
  const expected = `a list of at most ${max} items, each ${item.expected}`;
  return {
    expected,
    check(value, path, issues) {
      if (!Array.isArray(value) || value.length > max) return report(issues, path, value, expected);
      const out: T[] = [];
      let ok = true;
      for (const [index, element] of (value as unknown[]).entries()) {
        const checked = item.check(element, [...path, index], issues);
        if (checked === BAD) ok = false;
        else out.push(checked);
      }
      return ok ? out : BAD;
    },
  };
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The allowed key a typo most likely meant, if any is close. */
export function suggestKey(key: string, allowed: readonly string[]): string | undefined {
  const squash = (value: string): string => value.toLowerCase().replace(/[_-]/g, '');
  const same = allowed.find((candidate) => squash(candidate) === squash(key));
  if (same !== undefined) return same;
  const extending = allowed.filter((candidate) => key.length >= 2 && candidate.startsWith(key.toLowerCase()));
  if (extending.length === 1) return extending[0];
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.min(2, Math.floor(key.length / 3))) ? best : undefined;
}

type TableOf<S extends Shape, R extends keyof S> = { -readonly [K in keyof S]?: FieldType<S[K]> } & { -readonly [K in R]-?: FieldType<S[K]> };

function table<S extends Shape, R extends keyof S & string = never>(shape: S, required: readonly R[] = []): Field<TableOf<S, R>> {
  const expected = 'a table';
  const keys = Object.keys(shape);
  return {
    expected,
    check(value, path, issues) {
      if (!isTable(value)) return report(issues, path, value, expected);
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const key of Object.keys(value)) {
        const field = Object.hasOwn(shape, key) ? shape[key] : undefined;
        if (field === undefined) {
          const suggestion = suggestKey(key, keys);
          issues.push({
            path: formatPath([...path, key]),
            message: `unknown key \`${truncate(key, 60)}\` ${where(path)}${suggestion === undefined ? '' : `; did you mean \`${suggestion}\`?`}`,
          });
          ok = false;
          continue;
        }
        const checked = field.check(value[key], [...path, key], issues);
        if (checked === BAD) ok = false;
        else out[key] = checked;
      }
      for (const key of required) {
        if (!Object.hasOwn(value, key)) {
          const at = formatPath([...path, key]);
          const field: Field<unknown> | undefined = shape[key];
          issues.push({ path: at, message: `\`${at}\` is missing: expected ${field?.expected ?? 'a value'}` });
          ok = false;
        }
      }
      return ok ? (out as TableOf<S, R>) : BAD;
    },
  };
}

/** A table of tables keyed by a validated name: [apps."org.example.App"]. */
function tableOf<T>(keyExpected: string, keyValid: (key: string) => boolean, item: Field<T>): Field<[string, T][]> {
  const expected = `a table of tables keyed by ${keyExpected}`;
  return {
    expected,
    check(value, path, issues) {
      if (!isTable(value)) return report(issues, path, value, expected);
      const out: [string, T][] = [];
      let ok = true;
      for (const key of Object.keys(value)) {
        if (!keyValid(key)) {
          issues.push({ path: formatPath([...path, key]), message: `${JSON.stringify(truncate(key, 60))} ${where(path)} is not ${keyExpected}` });
          ok = false;
          continue;
        }
        const checked = item.check(value[key], [...path, key], issues);
        if (checked === BAD) ok = false;
        else out.push([key, checked]);
      }
      return ok ? out : BAD;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The configuration schema.

/** Same rule as the catalog's desktop file IDs. */
const APP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const APP_ID_EXPECTED = 'an app id (letters, digits, ".", "_", "-"; up to 128 characters)';
const appId = text(APP_ID_EXPECTED, (value) => APP_ID.test(value));
const port = integer(0, 65535);

const displayName = text(`a display name of 1 to ${NAME_MAX_LENGTH} printable characters, without leading or trailing spaces`, (value) => displayNameProblem(value) === undefined);

const interfaceName = text('an interface name of 1 to 15 characters from a-z A-Z 0-9 _ . : -', (value) => /^[a-zA-Z0-9_.:-]{1,15}$/.test(value));

const appList = list(appId, 4096);
const SHARE_APPS_EXPECTED = '"all" or a list of app ids';
const shareApps: Field<'all' | string[]> = {
  expected: SHARE_APPS_EXPECTED,
  check(value, path, issues) {
    if (value === 'all') return 'all';
    if (Array.isArray(value)) return appList.check(value, path, issues);
    return report(issues, path, value, SHARE_APPS_EXPECTED);
  },
};

const settingsShape = {
  network: bool,
  memory: size(4 * 1024 ** 2),
  cpus: decimal(0.01, 1024),
  pids: integer(1, 4_194_304),
  persistent_home: bool,
};
const settingsTable = table(settingsShape);
type RawSettings = FieldType<typeof settingsTable>;

const extraApp = table(
  {
    id: appId,
    name: plainText(1, 255, 'a name'),
    exec: plainText(1, 4096, 'a command line'),
    terminal: bool,
    comment: plainText(0, 1024, 'text'),
    icon: plainText(0, 1024, 'an icon name or absolute path'),
    mime_types: list(text('a MIME type such as "text/plain"', (value) => /^[A-Za-z0-9!#$&^_.+-]{1,127}\/[A-Za-z0-9!#$&^_.+-]{1,127}$/.test(value)), 256),
    categories: list(text('a category of 1 to 64 letters, digits, "_" or "-"', (value) => /^[A-Za-z0-9_-]{1,64}$/.test(value)), 64),
  },
  ['id', 'name', 'exec'],
);

const root = table({
  name: displayName,
  port,
  ui: table({ enabled: bool, port, display: plainText(1, 64, 'an X display such as ":0"') }),
  discovery: table({ enabled: bool, interfaces: list(interfaceName, 64) }),
  approval: table({ policy: oneOf(APPROVAL_POLICIES), timeout: duration(1000, 86_400_000), rate_limit: integer(1, 1000) }),
  share: table({ apps: shareApps, deny: appList, spares: integer(0, 16) }),
  defaults: settingsTable,
  apps: tableOf(APP_ID_EXPECTED, (key) => APP_ID.test(key), settingsTable),
  extra_apps: list(extraApp, 256),
});

function overridesFrom(raw: RawSettings): Partial<AppSettings> {
  const out: { -readonly [K in keyof AppSettings]?: AppSettings[K] } = {};
  if (raw.network !== undefined) out.network = raw.network;
  if (raw.memory !== undefined) out.memoryBytes = raw.memory;
  if (raw.cpus !== undefined) out.cpus = raw.cpus;
  if (raw.pids !== undefined) out.pids = raw.pids;
  if (raw.persistent_home !== undefined) out.persistentHome = raw.persistent_home;
  return out;
}

/**
 * Checks a parsed TOML document (integers as bigint, as smol-toml gives them with
 * `integersAsBigInt: true`) and builds the Config, defaults filled in. Throws one CONFIG_INVALID
 * error listing every problem, each naming `fileName`, the key path, the value and what is allowed.
 */
export function validateConfig(document: unknown, fileName: string): Config {
  const issues: ConfigIssue[] = [];
  const raw = root.check(document, [], issues);
  if (raw !== BAD) {
    const portValue = raw.port ?? DEFAULT_CONFIG.port;
    const uiPort = raw.ui?.port ?? DEFAULT_CONFIG.ui.port;
    if ((raw.ui?.enabled ?? DEFAULT_CONFIG.ui.enabled) && uiPort !== 0 && uiPort === portValue) {
      issues.push({ path: 'ui.port', message: `\`ui.port\` = ${uiPort}: expected a port other than \`port\` (${portValue}), or 0` });
    }
    const seen = new Set<string>();
    (raw.extra_apps ?? []).forEach((app, index) => {
      if (seen.has(app.id)) {
        issues.push({ path: `extra_apps[${index}].id`, message: `\`extra_apps[${index}].id\` = ${JSON.stringify(app.id)}: expected an id not used by another [[extra_apps]] entry` });
      }
      seen.add(app.id);
    });
  }
  if (raw === BAD || issues.length > 0) throw configInvalid(fileName, issues);

  const defaults = DEFAULT_CONFIG;
  return deepFreeze({
    name: raw.name ?? defaults.name,
    port: raw.port ?? defaults.port,
    ui: { enabled: raw.ui?.enabled ?? defaults.ui.enabled, port: raw.ui?.port ?? defaults.ui.port, display: raw.ui?.display ?? defaults.ui.display },
    discovery: {
      enabled: raw.discovery?.enabled ?? defaults.discovery.enabled,
      interfaces: raw.discovery?.interfaces ?? [...defaults.discovery.interfaces],
    },
    approval: {
      policy: raw.approval?.policy ?? defaults.approval.policy,
      timeoutMs: raw.approval?.timeout ?? defaults.approval.timeoutMs,
      rateLimit: raw.approval?.rate_limit ?? defaults.approval.rateLimit,
    },
    share: { apps: raw.share?.apps ?? defaults.share.apps, deny: raw.share?.deny ?? [...defaults.share.deny], spares: raw.share?.spares ?? defaults.share.spares },
    defaults: { ...defaults.defaults, ...overridesFrom(raw.defaults ?? {}) },
    apps: Object.fromEntries((raw.apps ?? []).map(([id, settings]) => [id, overridesFrom(settings)])),
    extraApps: (raw.extra_apps ?? []).map((app) => ({
      id: app.id,
      name: app.name,
      exec: app.exec,
      terminal: app.terminal ?? false,
      comment: app.comment ?? '',
      icon: app.icon ?? '',
      mimeTypes: app.mime_types ?? [],
      categories: app.categories ?? [],
    })),
  });
}

export function configInvalid(fileName: string, issues: readonly ConfigIssue[]): EbpError {
  const message =
    issues.length === 1 && issues[0] !== undefined
      ? `${fileName}: ${issues[0].message}`
      : `${fileName}: ${issues.length} problems:\n${issues.map((issue) => `  - ${issue.message}`).join('\n')}`;
  return new EbpError('CONFIG_INVALID', message, { hint: `fix ${fileName}, or remove a key to use its default` });
}
