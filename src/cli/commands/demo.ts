// `ebp demo`: a pool of N peers on this one machine to try eBrainPool with — each peer a daemon in
// a network namespace of its own, on a private test LAN (a bridge in another namespace,
// addresses from the benchmarking range 198.18.0.0/15). Built with the integration tests'
// harness (test/harness/testnet.ts, loaded from dist/ at run time), which never touches the real
// interfaces. Ctrl-C removes every namespace, process and (unless --keep-state) state folder.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { EbpError } from '../../lib/errors.js';
import { packageRoot } from '../../lib/package-root.js';
import { flag, integerOption } from '../args.js';
import type { Command } from '../command.js';
import type * as Harness from '../../../test/harness/testnet.js';

const DEFAULT_PEERS = 3;
const MAX_PEERS = 30;
/** Short record lifetimes, so that a peer killed without goodbyes leaves the lists quickly. */
const DEMO_TTL_SECONDS = 10;
/** Small X11 programs shared as GUI apps when they are installed. */
const GUI_CANDIDATES: readonly { id: string; name: string }[] = [
  { id: 'xeyes', name: 'xeyes' },
  { id: 'xclock', name: 'xclock' },
  { id: 'xcalc', name: 'xcalc' },
  { id: 'xlogo', name: 'xlogo' },
  { id: 'xterm', name: 'XTerm' },
  { id: 'gedit', name: 'Text Editor' },
  { id: 'mousepad', name: 'Mousepad' },
  { id: 'gnome-calculator', name: 'Calculator' },
];

function onPath(program: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function clock(): string {
  return new Date().toTimeString().slice(0, 8);
}

async function loadHarness(): Promise<typeof Harness> {
  const url = pathToFileURL(join(packageRoot(), 'dist', 'test', 'harness', 'testnet.js'));
  try {
    return (await import(url.href)) as typeof Harness;
  } catch (error) {
    throw new EbpError('INTERNAL', `ebp demo needs the test harness at ${url.pathname}, which cannot be loaded: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
      hint: 'run it from a built source checkout (npm run build)',
    });
  }
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'a pool of N peers on this machine, in network namespaces, to try things on',
  usage: 'sudo ebp demo [--peers N] [--keep-state]',
  description: `
Builds a private test LAN on this machine — a bridge and N hosts, each a network namespace with
its own veth "eth0" and an address from 198.18.0.0/15 — and starts a daemon in each host
(demo-1 ... demo-N) that shares a few apps (echo, cat, sh, date, python3 and whichever small X11
programs are installed). The peers trust each other's keys. Then prints the exact commands to
try (ebp peers, ebp run, ebp apps --all, as one of the peers) and a line whenever a peer comes
or goes, as demo-1 sees it. Nothing runs on the real network interfaces: discovery only
happens on the test LAN.

Ctrl-C (or SIGTERM) stops the daemons and removes the namespaces, links and state folders
(kept with --keep-state). Needs root (network namespaces) and \`ebp setup\` done once.
Records live ${DEMO_TTL_SECONDS} s, so a peer killed without saying goodbye leaves the lists
within that time.`,
  options: {
    peers: { type: 'string', value: 'N', description: `how many peers (default ${DEFAULT_PEERS}, at most ${MAX_PEERS})` },
    'keep-state': { type: 'boolean', description: 'leave the peers\' state folders (keys, trust, logs) behind' },
  },
  async run({ args, stdout, stderr }) {
    if (args.operands.length > 0) throw new EbpError('USAGE', 'ebp demo takes no operands', { hint: 'ebp demo [--peers N] [--keep-state]' });
    const count = integerOption(args, 'peers', { min: 2, max: MAX_PEERS }) ?? DEFAULT_PEERS;
    const keepState = flag(args, 'keep-state');
    if (process.platform !== 'linux') throw new EbpError('SANDBOX_UNSUPPORTED', 'ebp demo needs Linux network namespaces');
    if (process.getuid?.() !== 0) {
      throw new EbpError('PRIVILEGE_REQUIRED', 'ebp demo creates network namespaces, a bridge and veth links, which needs root', { hint: 'sudo ebp demo' });
    }
    const harness = await loadHarness();
    if (!harness.sandboxUserExists()) {
      throw new EbpError('PRIVILEGE_REQUIRED', 'the daemons run as root here, and their sandboxes need the "ebp-sandbox" user, which does not exist yet', { hint: 'sudo ebp setup, then sudo ebp demo' });
    }
    const problem = harness.testLanSkipReason();
    if (problem !== undefined) throw new EbpError('NETWORK_SETUP_FAILED', `cannot build the test LAN: ${problem}`);

    // Signals from now on: the first one cleans up (gracefully), a second one at once.
    let lan: Harness.TestLan | undefined;
    // Changed by the signal handler, between awaits.
    const state: { interrupted: boolean; wake: (() => void) | undefined; observer: Harness.TestDaemon | undefined } = { interrupted: false, wake: undefined, observer: undefined };
    // Read through functions: the handler changes them while we await.
    const interrupted = (): boolean => state.interrupted;
    const observer = (): Harness.TestDaemon | undefined => state.observer;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (state.interrupted) {
        stderr.write(`\nebp demo: ${signal} again: removing everything now\n`);
        lan?.destroySync();
        process.exit(130);
      }
      state.interrupted = true;
      stderr.write(`\nebp demo: ${signal}: stopping the peers and removing the test LAN...\n`);
      state.wake?.();
    };
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    for (const signal of signals) process.on(signal, onSignal);
    const began = Date.now();
    try {
      lan = await harness.createTestLan({ hosts: count, cleanupOnSignal: false, keepState });
      const current = lan;
      if (interrupted()) return 0;

      const apps: Harness.ExtraApp[] = [...harness.DEFAULT_APPS];
      if (onPath('python3') !== undefined) apps.push({ id: 'python3', name: 'Python 3', exec: 'python3', terminal: true, comment: 'a Python interpreter' });
      for (const gui of GUI_CANDIDATES) if (onPath(gui.id) !== undefined) apps.push({ id: gui.id, name: gui.name, exec: gui.id, terminal: false });
      const name = (host: Harness.TestHost): string => `demo-${host.index}`;
      await current.trustEachOther(current.hosts, name);
      const config = harness.configToml({ apps });
      const daemons = await Promise.all(current.hosts.map((host) => current.startDaemon(host, { name: name(host), config, env: { EBP_DISCOVERY_TTL: String(DEMO_TTL_SECONDS) }, timeoutMs: 60_000 })));
      if (interrupted()) return 0;

      // Everyone sees everyone (or 30 s pass).
      const complete = (): boolean => daemons.every((daemon) => !daemon.running || daemon.seen().size >= daemons.filter((other) => other.running).length - 1);
      const until = Date.now() + 30_000;
      while (!complete() && !interrupted() && Date.now() < until) await harness.sleep(100);
      if (interrupted()) return 0;

      const ebp = onPath('ebp') !== undefined ? 'ebp' : `${process.execPath} ${harness.EBP_BIN}`;
      const first = current.host(1);
      const second = current.host(2);
      const as = (host: Harness.TestHost): string => `sudo nsenter --net=${host.nsPath} ${ebp} --state-dir ${host.stateDir}`;
      const width = Math.max(...current.hosts.map((host) => name(host).length), 4) + 2;
      const lines = [
        '',
        complete()
          ? `ebp demo: ${count} peers see each other after ${((Date.now() - began) / 1000).toFixed(1)} s, on the test LAN ${current.subnet}.0/24.`
          : `ebp demo: ${count} peers started on the test LAN ${current.subnet}.0/24 (not all see each other yet).`,
        '',
        `  ${'peer'.padEnd(width)}${'address'.padEnd(16)}${'pid'.padEnd(9)}namespace / state folder`,
        ...current.hosts.map((host) => `  ${name(host).padEnd(width)}${host.address.padEnd(16)}${String(host.daemon?.pid ?? '').padEnd(9)}${host.ns}  ${host.stateDir}`),
        '',
        `Shared apps: ${apps.map((app) => app.id).join(', ')}`,
        '',
        `Try, in another terminal (as ${name(first)}):`,
        `  ${as(first)} peers`,
        `  ${as(first)} run ${name(second)} date`,
        `  ${as(first)} run ${second.daemon?.fingerprint.slice(7, 15) ?? name(second)} echo hello by fingerprint prefix`,
        `  ${as(first)} apps --all`,
        `  ${as(first)} run --any sh -c 'echo hello from a sandbox'`,
        `  ${as(first)} name first-peer        (rename it live: watch the lines below)`,
        `  kill ${current.host(count).daemon?.pid ?? 'PID'}        (stop ${name(current.host(count))}: it says goodbye and leaves at once; kill -9 to see the ${DEMO_TTL_SECONDS} s expiry)`,
        '',
        'Ctrl-C stops the peers and removes everything.',
        '',
      ];
      stdout.write(`${lines.join('\n')}\n`);

      // Live lines: comings and goings as one peer (the first still running) sees them.
      const watched = new Set<Harness.TestDaemon>();
      const pickObserver = (): void => {
        state.observer = daemons.find((daemon) => daemon.running);
        if (state.observer !== undefined && !watched.has(state.observer)) {
          watched.add(state.observer);
          const mine = state.observer;
          let shownAs = mine.name;
          // Our own former name after a rename (its goodbye comes back to us) is not a peer.
          const selfNames = new Set<string>();
          const count = (): number => [...mine.seen()].filter((peer) => !selfNames.has(peer)).length;
          mine.on('log', (entry) => {
            if (mine !== observer()) return;
            const peer = typeof entry['name'] === 'string' ? entry['name'] : '?';
            if (entry.event === 'peer-added' && entry['id'] === mine.fingerprint) selfNames.add(peer);
            else if (selfNames.has(peer) && entry.event === 'peer-removed') selfNames.delete(peer);
            else if (entry.event === 'peer-added') stdout.write(`${clock()}  + ${peer} joined (${typeof entry['addresses'] === 'string' ? entry['addresses'] : ''}), as ${mine.name} sees it: ${count()} peers\n`);
            else if (entry.event === 'peer-removed') stdout.write(`${clock()}  - ${peer} left, as ${mine.name} sees it: ${count()} peers\n`);
            else if (entry.event === 'discovery-renamed') {
              stdout.write(`${clock()}  ${shownAs} is now called ${peer}\n`);
              shownAs = peer;
            }
          });
        }
      };
      for (const daemon of daemons) {
        daemon.on('exit', ({ code, signal }) => {
          if (interrupted()) return;
          stdout.write(`${clock()}  the daemon of ${daemon.wantedName} (pid ${daemon.pid}) ended (${signal ?? `exit ${String(code)}`})\n`);
          if (daemon === observer()) {
            pickObserver();
            const next = observer();
            if (next !== undefined) stdout.write(`${clock()}  now watching as ${next.name}\n`);
          }
        });
      }
      pickObserver();

      await new Promise<void>((resolve) => {
        state.wake = resolve;
        if (interrupted()) resolve();
      });
      return 0;
    } finally {
      const where = lan?.stateRoot;
      const namespaces = lan === undefined ? 0 : lan.hosts.length + 1;
      await lan?.destroy();
      for (const signal of signals) process.off(signal, onSignal);
      if (lan !== undefined) {
        stderr.write(`ebp demo: removed ${namespaces} network namespaces and their links${keepState ? `; state folders kept in ${where ?? '?'}` : ' and the state folders'}\n`);
      }
    }
  },
};
