#!/usr/bin/env node
// `npm start` / `npm test` / `npm run bench` on a fresh Debian 12 machine: installs the system
// packages (apt when root; otherwise prints the exact sudo line and stops), the npm packages,
// builds, prepares the host (root), then runs the daemon, the test suite or the benchmarks.
// Only Node's built-ins here: nothing else is installed yet when this runs.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv[2] ?? 'start';
const isRoot = process.getuid?.() === 0;

/** Debian packages, each with the reason it is needed. */
const PACKAGES = {
  start: {
    bubblewrap: 'the sandbox engine',
    slirp4netns: 'NAT network for sandboxes that ask for it',
    libseccomp2: 'builds the sandbox seccomp filter',
    'util-linux': 'setsid and prlimit used around the sandbox',
    passwd: 'useradd for the sandbox system user',
    fontconfig: 'font lookup for applications',
    'fonts-dejavu-core': 'a base font for applications',
    sshfs: 'host side of file forwarding: mounts the person\'s files inside the sandbox',
    fuse3: 'the FUSE device and tools sshfs needs',
    'openssh-sftp-server': 'person side of file forwarding: serves the shared files',
    xauth: 'X11 forwarding: the untrusted cookie for the person\'s display',
    'tigervnc-standalone-server': 'apps shown in the browser: Xvnc gives a sandbox its own display',
    'desktop-file-utils': 'ebp install validates the launchers it writes',
  },
  test: {
    python3: 'attack and posture tests run real syscalls through ctypes',
    perl: 'checks that real programs work inside',
    procps: 'process checks in leak tests',
    strace: 'counts the sched_yield calls in the CPU hand-off test',
    iproute2: 'test hosts in network namespaces',
    locales: 'locale checks inside the sandbox',
    'openssh-client': 'interop: the real ssh client and ssh-keygen against the daemon',
    'openssh-server': 'benchmark anchor: a private sshd on loopback (never started as a service)',
    'avahi-daemon': 'interop: a real DNS-SD peer, run only inside test network namespaces',
    'avahi-utils': 'interop: avahi-browse and avahi-publish',
    dbus: 'the private bus avahi-daemon needs in the interop tests',
    xvfb: 'the person\'s display in the X11 tests',
    'x11-apps': 'xeyes, xwd and x11perf: X11 test programs and benchmark',
    'x11-utils': 'xmessage and xwininfo: X11 test programs',
    xterm: 'an X11 terminal app launched in the tests',
    xdotool: 'finds windows and types keys in the X11 tests',
    chromium: 'the browser that the web page tests drive',
    systemd: 'systemd-analyze verify checks the service units',
  },
  bench: {
    hyperfine: 'times whole commands against the anchors',
    firejail: 'anchor: firejail --noprofile',
    lxc: 'anchor: lxc-execute',
    xpra: 'anchor of the web bench: Xpra\'s HTML5 client (/usr/share/xpra/www) on loopback',
    'python3-pil': 'xpra\'s server needs it to accept a client (a Recommends, not pulled with --no-install-recommends)',
  },
};

function log(message) {
  process.stderr.write(`[${mode}] ${message}\n`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.error !== undefined) {
    log(`cannot run ${command}: ${result.error.message}`);
    process.exit(1);
  }
  return result.status ?? 1;
}

function mustRun(command, args, options) {
  const status = run(command, args, options);
  if (status !== 0) {
    log(`${command} ${args.join(' ')} failed with status ${status}`);
    process.exit(status);
  }
}

function missingPackages(names) {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\\n', ...names], { encoding: 'utf8' });
  const installed = new Set(
    (result.stdout ?? '').split('\n').filter((line) => line.endsWith(' installed')).map((line) => line.split(' ')[0]),
  );
  return names.filter((name) => !installed.has(name));
}

function ensurePackages() {
  const wanted = { ...PACKAGES.start, ...(mode === 'start' ? {} : PACKAGES.test), ...(mode === 'bench' ? PACKAGES.bench : {}) };
  if (spawnSync('dpkg-query', ['--version']).status !== 0) {
    log('dpkg-query not found: not a Debian system; install the equivalents of: ' + Object.keys(wanted).join(' '));
    return;
  }
  const missing = missingPackages(Object.keys(wanted));
  if (missing.length === 0) return;
  const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (!isRoot) {
    log('missing system packages:');
    for (const name of missing) log(`  ${name}: ${wanted[name]}`);
    log(`install them, then run this again:\n\n  sudo apt-get update && sudo ${line}\n`);
    process.exit(1);
  }
  log(`installing system packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Packages such as openssh-server and avahi-daemon start their service on install; on this
  // machine that would open sshd on port 22 and announce mDNS on the real interfaces. Debian's
  // policy-rc.d hook (exit 101) forbids service starts for the duration of the install.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\n# ebp bootstrap: no service starts during package installation\nexit 101\n', { mode: 0o755 });
  let status = run('apt-get', ['update', '-q'], { env });
  if (status === 0) status = run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env });
  if (ownPolicy) rmSync(policy, { force: true });
  if (status !== 0) {
    log(`apt-get failed with status ${status}; fix the message above, then run this again`);
    process.exit(status);
  }
}

function newer(file, than) {
  return !existsSync(than) || statSync(file).mtimeMs > statSync(than).mtimeMs;
}

function ensureNodeModules() {
  const stamp = join(root, 'node_modules', '.ebp-installed');
  const lock = join(root, 'package-lock.json');
  if (existsSync(stamp) && !newer(lock, stamp) && !newer(join(root, 'package.json'), stamp)) return;
  log('installing npm packages (npm ci)');
  mustRun('npm', ['ci', '--no-audit', '--no-fund']);
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

function build() {
  log('building (tsc)');
  mustRun(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
  log('bundling the CLI (esbuild)');
  mustRun(process.execPath, [join(root, 'scripts', 'bundle.mjs')]);
  log('building the web page (tsc checks it against the daemon\'s view types, vite bundles it)');
  mustRun(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'web/tsconfig.json']);
  mustRun(process.execPath, [join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'web/vite.config.mjs', '--logLevel', 'warn']);
}

/** The daemon's Node options (src/daemon/node-flags.ts; a unit test keeps the two alike). */
const DAEMON_NODE_FLAGS = ['--initial-old-space-size=64'];

function ebp(args) {
  return run(process.execPath, [...DAEMON_NODE_FLAGS, join(root, 'bin', 'ebp'), ...args]);
}

const { engines } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  log(`Node.js ${process.versions.node} is too old; this project needs ${engines.node}`);
  process.exit(1);
}

ensurePackages();
ensureNodeModules();
build();
if (isRoot) mustRun(process.execPath, [join(root, 'bin', 'ebp'), 'setup']);

switch (mode) {
  case 'start': {
    ebp(['doctor']);
    log('starting the daemon (Ctrl-C stops it)');
    process.exit(ebp(['up', ...process.argv.slice(3)]));
    break;
  }
  case 'test': {
    log('lint (eslint, type-aware)');
    mustRun(process.execPath, [join(root, 'node_modules', 'eslint', 'bin', 'eslint.js'), '.']);
    log('unit tests');
    const unit = run(process.execPath, ['--test', '--test-reporter=spec', 'dist/test/unit/']);
    log('integration tests');
    const integration = run(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', 'dist/test/integration/']);
    process.exit(unit !== 0 ? unit : integration);
    break;
  }
  case 'bench': {
    process.exit(run(process.execPath, ['dist/bench/run.js', ...process.argv.slice(3)]));
    break;
  }
  default:
    log(`unknown mode "${mode}" (start, test, bench)`);
    process.exit(2);
}
