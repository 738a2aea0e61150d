import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { defaultConfigFile, loadConfig, parseConfig } from '../../src/config/load.js';
import { appSettings, DEFAULT_CONFIG, displayNameProblem, suggestKey } from '../../src/config/schema.js';
import { EbpError } from '../../src/lib/errors.js';

const root = mkdtempSync(join(tmpdir(), 'ebp-config-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const FILE = '/etc/ebp/config.toml';

/** Parses `text` expecting CONFIG_INVALID; checks the message names the file and contains each part. */
function invalid(text: string, ...parts: string[]): EbpError {
  let caught: unknown;
  try {
    parseConfig(text, FILE);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof EbpError, `expected an error for:\n${text}`);
  assert.equal(caught.code, 'CONFIG_INVALID');
  assert.ok(caught.message.startsWith(FILE), caught.message);
  for (const part of parts) assert.ok(caught.message.includes(part), `${JSON.stringify(part)} not in:\n${caught.message}`);
  return caught;
}

const FULL = `
name = "alice-laptop"
port = 20111

[ui]
enabled = false
port = 20112
display = ":7"

[discovery]
enabled = true
interfaces = ["eth0", "wlp2s0", "br-lan.10"]

[approval]
policy = "trusted-only"
timeout = "90s"
rate_limit = 3

[share]
apps = ["org.gnome.gedit", "firefox-esr"]
deny = ["org.example.Secret"]
spares = 2

[defaults]
network = true
memory = "512M"
cpus = 1.5
pids = 128
persistent_home = true

[apps."org.example.App"]
network = false
memory = "2G"

[apps.htop]
cpus = 2

[[extra_apps]]
id = "htop"
name = "htop"
exec = "htop"
terminal = true
comment = "Process viewer"
icon = "utilities-system-monitor"
mime_types = ["text/plain"]
categories = ["System", "Monitor"]

[[extra_apps]]
id = "top"
name = "top"
exec = "top -d 1"
`;

test('an empty file gives the defaults', () => {
  assert.deepEqual(parseConfig('', FILE), DEFAULT_CONFIG);
  assert.deepEqual(parseConfig('# only comments\n', FILE), DEFAULT_CONFIG);
  assert.equal(DEFAULT_CONFIG.port, 20101);
  assert.equal(DEFAULT_CONFIG.ui.port, 20102);
  assert.equal(DEFAULT_CONFIG.approval.policy, 'ask');
  assert.equal(DEFAULT_CONFIG.approval.timeoutMs, 60_000);
  assert.equal(DEFAULT_CONFIG.approval.rateLimit, 5);
  assert.equal(DEFAULT_CONFIG.share.apps, 'all');
  assert.deepEqual(DEFAULT_CONFIG.defaults, { network: false, memoryBytes: 1024 ** 3, cpus: 1, pids: 256, persistentHome: false });
  assert.equal(displayNameProblem(DEFAULT_CONFIG.name), undefined);
  assert.ok(Object.isFrozen(DEFAULT_CONFIG.defaults));
});

test('every key is read, converted to bytes and milliseconds, with camelCase names', () => {
  const config = parseConfig(FULL, FILE);
  assert.deepEqual(config, {
    name: 'alice-laptop',
    port: 20111,
    ui: { enabled: false, port: 20112, display: ':7' },
    discovery: { enabled: true, interfaces: ['eth0', 'wlp2s0', 'br-lan.10'] },
    approval: { policy: 'trusted-only', timeoutMs: 90_000, rateLimit: 3 },
    share: { apps: ['org.gnome.gedit', 'firefox-esr'], deny: ['org.example.Secret'], spares: 2 },
    defaults: { network: true, memoryBytes: 512 * 1024 ** 2, cpus: 1.5, pids: 128, persistentHome: true },
    apps: { 'org.example.App': { network: false, memoryBytes: 2 * 1024 ** 3 }, htop: { cpus: 2 } },
    extraApps: [
      {
        id: 'htop',
        name: 'htop',
        exec: 'htop',
        terminal: true,
        comment: 'Process viewer',
        icon: 'utilities-system-monitor',
        mimeTypes: ['text/plain'],
        categories: ['System', 'Monitor'],
      },
      { id: 'top', name: 'top', exec: 'top -d 1', terminal: false, comment: '', icon: '', mimeTypes: [], categories: [] },
    ],
  });
  assert.deepEqual(appSettings(config, 'org.example.App'), { network: false, memoryBytes: 2 * 1024 ** 3, cpus: 1.5, pids: 128, persistentHome: true });
  assert.deepEqual(appSettings(config, 'other'), config.defaults);
  assert.deepEqual(appSettings(config, 'constructor'), config.defaults, 'only own keys count');
});

test('partial tables keep the other defaults; sizes and durations take numbers too', () => {
  const config = parseConfig('[approval]\ntimeout = 30\n[defaults]\nmemory = 268435456\ncpus = 2\n', FILE);
  assert.equal(config.approval.timeoutMs, 30_000);
  assert.equal(config.approval.policy, 'ask');
  assert.equal(config.defaults.memoryBytes, 256 * 1024 ** 2);
  assert.equal(config.defaults.cpus, 2);
  assert.equal(config.defaults.pids, 256);
  assert.equal(parseConfig('port = 0\n[ui]\nport = 0', FILE).port, 0);
});

test('bad values name the key path, the value and what is allowed', () => {
  invalid('name = ""', '`name` = ""', 'display name of 1 to 63');
  invalid(`name = "${'x'.repeat(64)}"`, '`name` =', '1 to 63');
  invalid('name = "bad\\u0007bell"', '`name` = "bad\\u0007bell"', 'printable');
  invalid('name = 5', '`name` = 5', 'display name');
  invalid('port = 70000', '`port` = 70000', 'an integer from 0 to 65535');
  invalid('port = -1', '`port` = -1', 'an integer from 0 to 65535');
  invalid('port = "20101"', '`port` = "20101"', 'an integer');
  invalid('port = 20101.5', '`port` = 20101.5', 'an integer');
  invalid('[ui]\nenabled = "yes"', '`ui.enabled` = "yes"', 'true or false');
  invalid('[ui]\nport = 99999', '`ui.port` = 99999', '0 to 65535');
  invalid('[ui]\nport = 20101', '`ui.port` = 20101', 'other than `port`');
  invalid('[discovery]\ninterfaces = "eth0"', '`discovery.interfaces` = "eth0"', 'a list');
  invalid('[discovery]\ninterfaces = ["eth0", "this-name-is-too-long"]', '`discovery.interfaces[1]` = "this-name-is-too-long"', '1 to 15 characters');
  invalid('[discovery]\ninterfaces = ["a b"]', '`discovery.interfaces[0]` = "a b"');
  invalid('[approval]\npolicy = "maybe"', '`approval.policy` = "maybe"', 'one of "ask", "trusted-only", "open"');
  invalid('[approval]\ntimeout = "soon"', '`approval.timeout` = "soon"', 'a duration');
  invalid('[approval]\ntimeout = "0s"', '`approval.timeout` = "0s"', 'from 1s to 24h');
  invalid('[approval]\ntimeout = "2d"', '`approval.timeout` = "2d"');
  invalid('[approval]\nrate_limit = 0', '`approval.rate_limit` = 0', 'an integer from 1 to 1000');
  invalid('[share]\napps = "some"', '`share.apps` = "some"', '"all" or a list of app ids');
  invalid('[share]\napps = ["ok", "../etc"]', '`share.apps[1]` = "../etc"', 'an app id');
  invalid('[share]\ndeny = [1]', '`share.deny[0]` = 1', 'an app id');
  invalid('[share]\nspares = 17', '`share.spares` = 17', 'an integer from 0 to 16');
  invalid('[defaults]\nnetwork = 1', '`defaults.network` = 1', 'true or false');
  invalid('[defaults]\nmemory = "lots"', '`defaults.memory` = "lots"', 'a size');
  invalid('[defaults]\nmemory = "1K"', '`defaults.memory` = "1K"', 'at least 4M');
  invalid('[defaults]\ncpus = 0', '`defaults.cpus` = 0', 'a number from 0.01 to 1024');
  invalid('[defaults]\ncpus = inf', '`defaults.cpus` = Infinity', 'a number');
  invalid('[defaults]\npids = 0', '`defaults.pids` = 0', 'an integer from 1 to 4194304');
  invalid('[defaults]\npersistent_home = "no"', '`defaults.persistent_home` = "no"', 'true or false');
  invalid('[apps."org.example.App"]\nnetwork = "yes"', '`apps."org.example.App".network` = "yes"', 'true or false');
  invalid('[apps."bad id!"]\nnetwork = true', '"bad id!" in [apps] is not an app id');
  invalid('apps = 3', '`apps` = 3', 'a table of tables');
  invalid('[apps]\nfoo = 1', '`apps.foo` = 1', 'a table');
  invalid('ui = [1, 2]', '`ui` = [1, 2]', 'a table');
  invalid('name = 1979-05-27', '`name` = a date');
  invalid('[[extra_apps]]\nid = "x"\nname = "x"\nexec = "x"\nterminal = "yes"', '`extra_apps[0].terminal` = "yes"', 'true or false');
  invalid('[[extra_apps]]\nid = "x"\nname = "x"\nexec = ""', '`extra_apps[0].exec` = ""', 'a command line of 1 to 4096');
  invalid('[[extra_apps]]\nid = "x"\nname = "x"\nexec = "x"\nmime_types = ["plain"]', '`extra_apps[0].mime_types[0]` = "plain"', 'a MIME type');
  invalid('[[extra_apps]]\nid = "x"\nname = "x"\nexec = "x"\ncategories = ["a b"]', '`extra_apps[0].categories[0]` = "a b"');
  invalid('extra_apps = "htop"', '`extra_apps` = "htop"', 'a list');
});

test('missing required keys and duplicate ids in [[extra_apps]] are named', () => {
  invalid('[[extra_apps]]\nid = "htop"', '`extra_apps[0].name` is missing', '`extra_apps[0].exec` is missing', '2 problems');
  invalid('[[extra_apps]]\nid = "a"\nname = "a"\nexec = "a"\n[[extra_apps]]\nid = "a"\nname = "b"\nexec = "b"', '`extra_apps[1].id` = "a"', 'not used by another');
});

test('unknown keys are errors, with a suggestion when one is close', () => {
  invalid('shar = 1', 'unknown key `shar` at the top level; did you mean `share`?');
  invalid('[approval]\npolcy = "ask"', 'unknown key `polcy` in [approval]; did you mean `policy`?');
  invalid('[approval]\nrateLimit = 3', 'unknown key `rateLimit` in [approval]; did you mean `rate_limit`?');
  invalid('[defaults]\nmem = "1G"', 'unknown key `mem` in [defaults]');
  invalid('[apps."org.example.App"]\nnetwrk = true', 'unknown key `netwrk` in [apps."org.example.App"]; did you mean `network`?');
  invalid('[[extra_apps]]\nid = "a"\nname = "a"\nexec = "a"\nicons = "x"', 'unknown key `icons` in `extra_apps[0]`; did you mean `icon`?');
  const error = invalid('completely_unrelated = 1', 'unknown key `completely_unrelated` at the top level');
  assert.ok(!error.message.includes('did you mean'));
  assert.equal(suggestKey('persistenthome', ['network', 'persistent_home']), 'persistent_home');
  assert.equal(suggestKey('xyz', ['network']), undefined);
});

test('all problems of a file are listed together', () => {
  const error = invalid('port = "x"\n[approval]\npolicy = 1\n[share]\nap = []', '3 problems', '`port` = "x"', '`approval.policy` = 1', 'unknown key `ap` in [share]; did you mean `apps`?');
  assert.match(error.hint ?? '', /config\.toml/);
});

test('TOML syntax errors give the file, line and column', () => {
  const error = invalid('name = "x"\nport = [\n', `${FILE}:3:1: invalid TOML`);
  assert.match(error.hint ?? '', /line 3/);
  invalid('[ui]\nenabled = true\n[ui]\n', 'invalid TOML');
});

test('loadConfig: no file or a missing file gives the defaults unless required', async () => {
  assert.equal(await loadConfig(undefined), DEFAULT_CONFIG);
  const missing = join(root, 'nope', 'config.toml');
  assert.equal(await loadConfig(missing), DEFAULT_CONFIG);
  await assert.rejects(loadConfig(missing, { required: true }), (error: unknown) => error instanceof EbpError && error.code === 'CONFIG_INVALID' && error.message.includes(missing) && /does not exist/.test(error.message));

  const configDir = join(root, 'etc');
  mkdirSync(configDir);
  const file = defaultConfigFile(configDir);
  assert.equal(file, join(configDir, 'config.toml'));
  writeFileSync(file, '\uFEFFname = "from-file"\n');
  assert.equal((await loadConfig(file, { required: true })).name, 'from-file');
  writeFileSync(file, '[approval]\npolicy = "never"\n');
  await assert.rejects(loadConfig(file), (error: unknown) => error instanceof EbpError && error.message.startsWith(`${file}: \`approval.policy\` = "never"`));
  writeFileSync(file, Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3d, 0x22, 0xff, 0x22]));
  await assert.rejects(loadConfig(file), /not UTF-8/);
  await assert.rejects(loadConfig(configDir), /not a regular file/);
});
