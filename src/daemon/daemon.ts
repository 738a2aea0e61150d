// `ebp up`: the peer daemon. Composes the pieces: identity, configuration, catalogue, trust and
// approvals, the sandbox engine, the SSH server peers launch through, the control socket the
// local CLI talks to, and the connection pool for launches on other peers.
import type { Socket } from 'node:net';
import type { Catalog } from '../catalog/catalog.js';
import { loadConfig, defaultConfigFile } from '../config/load.js';
import { displayNameProblem, type Config } from '../config/schema.js';
import type { StatePaths } from '../config/paths.js';
import { controlSocketPath } from '../control/client.js';
import { callerInputEmpty, callerPid, combineCallerStdio, openCallerStdio } from '../control/caller-stdio.js';
import { relayToProcess } from '../control/frames.js';
import { ControlServer } from '../control/server.js';
import { validateLocalDisplay } from '../display/x11-local.js';
import { Approvals, type Decision } from '../host/approvals.js';
import { LaunchService } from '../host/launch.js';
import { Sessions } from '../host/sessions.js';
import { EbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { QUIET_AFTER_LAUNCH_MS } from '../lib/quiet.js';
import { AuditLog, auditLogPath } from '../peer/audit.js';
import { loadOrCreateIdentity, type Identity } from '../peer/identity.js';
import { KnownHosts } from '../peer/known-hosts.js';
import { TrustStore } from '../peer/trust-store.js';
import { createEngine, type SandboxEngine } from '../sandbox/engine.js';
import { SpareSandboxes } from '../sandbox/spares.js';
import { PeerPool } from '../transport/peer-pool.js';
import { joinShellWords } from '../transport/shell-words.js';
import { endpointText, type PeerConnection } from '../transport/ssh-client.js';
import { SshServer } from '../transport/ssh-server.js';
import { appView, catalogFromConfig, catalogView, type AppView } from './catalog-source.js';
import { relaySandbox } from './local-sandbox.js';
import { Discovery, PROTOCOL_VERSION, type PeerTxt } from '../discovery/index.js';
import { PeerDirectory, type PeerStatusAnswer, type PeerTarget, type PeerView } from '../peer/directory.js';
import { StaticPeers } from '../peer/static-peers.js';
import { resolveWithFallback } from '../peer/fallback.js';
import { EventEmitter } from 'node:events';
import { loadOrCreateToken } from '../web/token.js';
import { WebServer } from '../web/server.js';
import type { ChangeTopic, PoolPeer, WebServices } from '../web/services.js';
import { Withheld } from './withheld.js';
import { browserIcon, iconIfAny, parseIconAnswer, readAppIcon, type IconFile } from '../catalog/icon-file.js';
import { DISPLAY_ENV, displayRequestText } from '../display/vnc.js';
import { DesktopLaunches } from './desktop.js';

export interface DaemonOptions {
  readonly paths: StatePaths;
  readonly configFile?: string;
  readonly name?: string;
  readonly port?: number;
  /** Listen address of the SSH server (default: all). */
  readonly host?: string;
  readonly log: Logger;
  readonly env?: NodeJS.ProcessEnv;
  /** No DNS-SD at all (static peers still work). */
  readonly noDiscovery?: boolean;
  /** Announce and browse only on these interfaces (default: the config's, else all). */
  readonly interfaces?: readonly string[];
  /** TTL of our DNS-SD records (tests use short ones). */
  readonly discoveryTtlSeconds?: number;
  /** The local web page: its port (0 picks one), or false for none. Default: the config's. */
  readonly ui?: { readonly port: number } | false;
}

/** Empty sandbox cgroups older than this were left by a killed daemon. */
const STALE_CGROUP_MS = 5 * 60_000;

/** Static peers are asked how they are this often. */
const STATIC_CHECK_MS = 15_000;

/** Peers' icons kept at most (the cache starts over when full). */
const ICON_CACHE = 512;

/** How often the page's pool view checks the directory for changes. */
const POOL_WATCH_MS = 1000;

/** The web page, when on: its token made or read first. */
async function startWeb(options: { ui: { port: number } | false; explicit: boolean; stateDir: string; log: Logger; services: WebServices }): Promise<WebServer | undefined> {
  if (options.ui === false) return undefined;
  const token = await loadOrCreateToken(options.stateDir);
  try {
    return await WebServer.listen({ port: options.ui.port, token, services: options.services, log: options.log });
  } catch (error) {
    // Another daemon on this machine (a test, a second user) has the default port: the daemon
    // still shares its apps; only a port asked for on the command line is a reason to stop.
    const code = error instanceof Error && error.cause instanceof Error ? (error.cause as NodeJS.ErrnoException).code : undefined;
    if (options.explicit || code !== 'EADDRINUSE') throw error;
    options.log('ui-unavailable', { port: options.ui.port, reason: 'the port is in use', fix: 'ebp up --ui-port N' });
    return undefined;
  }
}

/** How many launches may run at once on this host. */
const DEFAULT_CAPACITY = 32;

function text(params: Record<string, unknown>, key: string): string {
  const value = params[key];
  if (typeof value !== 'string' || value === '') throw new EbpError('USAGE', `missing "${key}"`);
  return value;
}

export class Daemon {
  readonly identity: Identity;
  readonly config: Config;
  readonly name: string;
  readonly #ssh: SshServer;
  readonly #control: ControlServer;
  readonly #sessions: Sessions;
  readonly #approvals: Approvals;
  readonly #pool: PeerPool;
  readonly #log: Logger;
  readonly #discovery: Discovery | undefined;
  readonly #timers: NodeJS.Timeout[];
  readonly #web: WebServer | undefined;
  readonly #desktop: DesktopLaunches;
  readonly #spares: SpareSandboxes;
  #catalog: Catalog;
  #closing: Promise<void> | undefined;

  private constructor(parts: {
    identity: Identity; config: Config; name: string; ssh: SshServer; control: ControlServer; sessions: Sessions;
    approvals: Approvals; pool: PeerPool; log: Logger; catalog: Catalog; discovery: Discovery | undefined; timers: NodeJS.Timeout[]; web: WebServer | undefined; desktop: DesktopLaunches;
    spares: SpareSandboxes;
  }) {
    this.identity = parts.identity;
    this.config = parts.config;
    this.name = parts.name;
    this.#ssh = parts.ssh;
    this.#control = parts.control;
    this.#sessions = parts.sessions;
    this.#approvals = parts.approvals;
    this.#pool = parts.pool;
    this.#log = parts.log;
    this.#catalog = parts.catalog;
    this.#discovery = parts.discovery;
    this.#timers = parts.timers;
    this.#web = parts.web;
    this.#desktop = parts.desktop;
    this.#spares = parts.spares;
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const { paths, log } = options;
    const config = await loadConfig(options.configFile ?? defaultConfigFile(paths.configDir), { required: options.configFile !== undefined });
    const name = options.name ?? config.name;
    const identity = await loadOrCreateIdentity(paths.stateDir);
    const engine: SandboxEngine = await createEngine({ cacheDir: paths.stateDir, tearDownAfterMs: QUIET_AFTER_LAUNCH_MS });
    if (engine.cgroups === undefined) log('cgroups-unavailable', { reason: engine.cgroupProblem ?? 'unknown', fallback: 'rlimits' });
    const swept = engine.cgroups?.sweep(STALE_CGROUP_MS) ?? 0;
    if (swept > 0) log('stale-cgroups-removed', { count: swept });
    let catalog = await catalogFromConfig(config, options.env);
    for (const problem of catalog.problems) log('catalog-problem', { file: problem.file, reason: problem.reason });
    const trust = await TrustStore.open(paths.stateDir);
    const knownHosts = await KnownHosts.open(paths.stateDir);
    const approvals = new Approvals({ timeoutMs: config.approval.timeoutMs, ratePerMinute: config.approval.rateLimit });
    const sessions = new Sessions({ capacity: DEFAULT_CAPACITY });
    const audit = new AuditLog(auditLogPath(paths.stateDir));
    // What changed, for the web page's live view.
    const changes = new EventEmitter<{ change: [ChangeTopic] }>();
    const changed = (topic: ChangeTopic): void => {
      changes.emit('change', topic);
    };
    // What peers see and may launch: the catalogue less the apps the owner switched off.
    const withheld = Withheld.open(paths.stateDir);
    const shared = (): Catalog => withheld.view(catalog);
    // The next launch of an app finds its sandbox made (sandbox/spares.ts).
    const spares = new SpareSandboxes({ engine, max: config.share.spares });
    const sparesProblem = SpareSandboxes.problem(config.share.spares);
    if (sparesProblem !== undefined) log('spares-off', { reason: sparesProblem, fix: 'sudo apt-get install bash' });
    const launch = new LaunchService({
      spares,
      catalog: shared,
      trust,
      approvals,
      sessions,
      audit,
      engine,
      approvalPolicy: () => config.approval.policy,
      stateDir: paths.stateDir,
      ownFingerprint: identity.fingerprint,
      onTrusted: () => { changed('trusted'); },
    });
    approvals.on('added', (request) => { log('approval-requested', { request: request.id, peer: request.peerId, name: request.peerName, app: request.app }); });
    approvals.on('settled', (request, outcome) => { log('approval-settled', { request: request.id, outcome }); });
    const txt = (): PeerTxt => ({ v: PROTOCOL_VERSION, id: identity.fingerprint, apps: shared().apps.length, cat: shared().version, load: `${sessions.count}/${sessions.capacity}` });
    const ssh = await SshServer.listen({
      hostKey: identity.privateKey,
      port: options.port ?? config.port,
      ...(options.host === undefined ? {} : { host: options.host }),
      launch,
      queries: {
        apps: () => catalogView(shared()),
        status: () => ({ name: discovery?.instanceName ?? name, ...txt() }),
        icon: async (appId) => {
          const app = shared().get(appId);
          if (app === undefined) throw new EbpError('APP_NOT_SHARED', `"${appId}" is not an app this machine shares`);
          const icon = await readAppIcon(app);
          return { type: icon.type, data: icon.data.toString('base64') };
        },
      },
      log,
    });
    const pool = new PeerPool({ identity, knownHosts, username: name });
    const staticPeers = await StaticPeers.open(paths.stateDir);

    let discovery: Discovery | undefined;
    const interfaces = options.interfaces ?? (config.discovery.interfaces.length > 0 ? config.discovery.interfaces : undefined);
    // Listening on loopback only, nobody on a LAN could connect: announcing there would only
    // mislead them. Discovery then needs an explicit interface.
    const loopbackOnly = options.host !== undefined && /^(127\.|::1$|localhost$)/.test(options.host) && interfaces === undefined;
    if (loopbackOnly) log('discovery-off', { reason: 'listening on loopback only; give --interface to announce anyway' });
    if (options.noDiscovery !== true && config.discovery.enabled && !loopbackOnly) {
      try {
        discovery = await Discovery.start({
          name, port: ssh.port, txt: txt(), log,
          ...(interfaces === undefined ? {} : { interfaces }),
          ...(options.discoveryTtlSeconds === undefined ? {} : { ttlSeconds: options.discoveryTtlSeconds }),
        });
        const found = discovery;
        found.on('renamed', (instance) => { log('discovery-renamed', { name: instance }); });
        found.on('added', (peer) => { log('peer-added', { name: peer.instance, id: peer.txt.id ?? 'unverified', addresses: peer.addresses.join(','), port: peer.port }); });
        found.on('removed', (peer) => { log('peer-removed', { name: peer.instance }); });
      } catch (error) {
        log('discovery-unavailable', { reason: error instanceof Error ? error.message : String(error) });
      }
    }
    const announce = (): void => {
      discovery?.updateTxt(txt());
    };
    sessions.on('started', announce);
    sessions.on('ended', announce);

    const directory = new PeerDirectory({
      knownHosts, trust, staticPeers,
      discovered: () => discovery?.peers() ?? [],
      probe: async (target) => JSON.parse(await (await pool.get({ host: target.host, port: target.port }, target.expectedFingerprint)).query('ebp:status')) as PeerStatusAnswer,
    });
    /** Dials a peer as resolved; a peer whose key contradicts its announcement is an impostor. */
    const connect = async (peerText: string, fallbackAddress?: string): Promise<{ connection: PeerConnection; target: PeerTarget }> => {
      const target = resolveWithFallback(peerText, fallbackAddress, (peer) => directory.resolve(peer));
      try {
        const connection = await pool.get({ host: target.host, port: target.port }, target.expectedFingerprint);
        if (target.expectedFingerprint !== undefined) directory.markGenuine(target.host, target.port, connection.fingerprint);
        return { connection, target };
      } catch (error) {
        if (error instanceof EbpError && error.code === 'HOST_KEY_CHANGED' && target.expectedFingerprint !== undefined) {
          directory.markImpostor(target.host, target.port);
          log('peer-impostor', { peer: peerText, address: target.host, port: target.port });
        }
        throw error;
      }
    };
    const catalogs = new Map<string, AppView[]>();
    const peerCatalog = async (view: PeerView): Promise<AppView[]> => {
      const key = `${view.id ?? view.name}/${view.catalogVersion ?? ''}`;
      const cached = catalogs.get(key);
      if (cached !== undefined && view.catalogVersion !== undefined) return cached;
      const { connection } = await connect(view.id ?? `${view.addresses[0] ?? ''}:${view.port}`);
      const apps = (JSON.parse(await connection.query('ebp:apps')) as { apps: AppView[] }).apps;
      catalogs.set(key, apps);
      return apps;
    };
    const usable = (view: PeerView): boolean => view.status === 'verified' || view.status === 'announced' || view.status === 'pinned';
    const timers = [setInterval(() => void directory.checkStatic(), STATIC_CHECK_MS)];
    for (const timer of timers) timer.unref();
    void directory.checkStatic();

    // "Open on this desktop": the daemon's own display, checked in the background (an X server
    // that hangs must not hold up the start); launches go through the same pooled connections.
    const env = options.env ?? process.env;
    const desktop = new DesktopLaunches({
      display: config.ui.display !== '' ? config.ui.display : env['DISPLAY'],
      env,
      launch: async (peer, appId, x11, onWindow) => {
        const { connection, target } = await connect(peer);
        const remote = await connection.exec(joinShellWords([appId]), { env: {}, x11, onX11Connection: onWindow });
        return { remote, peerName: target.view?.name ?? endpointText(connection.endpoint) };
      },
      onChange: () => { changed('desktop'); },
      log,
    });
    void desktop.check();

    /** Peers' icons, fetched once each (bounded). */
    const icons = new Map<string, IconFile | undefined>();
    // The web page's service layer; the control socket's handlers below call the same functions.
    const services: WebServices = {
      pool: async () => {
        const selfName = discovery?.instanceName ?? name;
        const self: PoolPeer = {
          target: endpointText({ host: options.host ?? '127.0.0.1', port: ssh.port }), name: selfName, id: identity.fingerprint, status: 'self', trusted: true,
          load: `${sessions.count}/${sessions.capacity}`, apps: catalogView(shared()).apps,
        };
        const peers = await Promise.all(directory.list().map(async (view): Promise<PoolPeer> => {
          const base = { target: view.id ?? `${view.addresses[0] ?? ''}:${view.port}`, name: view.name, id: view.id, status: view.status, trusted: view.trusted, load: view.load };
          if (!usable(view)) return { ...base, apps: [], problem: view.status };
          try {
            return { ...base, apps: await peerCatalog(view) };
          } catch (error) {
            return { ...base, apps: [], problem: error instanceof Error ? error.message : String(error) };
          }
        }));
        return { self: { name: selfName, id: identity.fingerprint }, peers: [self, ...peers] };
      },
      requests: () => approvals.list(),
      decide: (id, decision) => approvals.decide(id, decision),
      sessions: () => sessions.list(),
      stop: async (id) => {
        const exit = await sessions.stop(id);
        return { code: exit.code, reason: exit.reason };
      },
      trusted: () => trust.list(),
      untrust: async (id) => {
        const removed = await trust.remove(id);
        changed('trusted');
        return removed;
      },
      shared: () => catalogView(catalog).apps.map((app) => ({ ...app, shared: !withheld.has(app.id) })),
      setShared: async (appId, on) => {
        const app = catalog.get(appId);
        if (app === undefined) throw new EbpError('NOT_FOUND', `this machine has no app "${appId.slice(0, 64)}"`);
        await withheld.set(appId, !on);
        announce();
        changed('shared');
        changed('pool');
        return { ...appView(app), shared: on };
      },
      icon: async (appId, peer) => {
        if (peer === undefined) return browserIcon(await iconIfAny(shared().get(appId)));
        const key = `${peer}\n${appId}`;
        if (icons.has(key)) return icons.get(key);
        const { connection } = await connect(peer);
        let icon: IconFile | undefined;
        try {
          icon = browserIcon(parseIconAnswer(await connection.query(joinShellWords(['ebp:icon', appId]))));
        } catch {
          icon = undefined; // the peer has none: remembered as such
        }
        if (icons.size >= ICON_CACHE) icons.clear();
        icons.set(key, icon);
        return icon;
      },
      openTerminal: async (peer, appId, size) => {
        const { connection } = await connect(peer);
        return connection.exec(joinShellWords([appId]), { pty: { term: 'xterm-256color', cols: size.cols, rows: size.rows }, env: {} });
      },
      openDisplay: async (peer, appId, display) => {
        const { connection } = await connect(peer);
        return connection.exec(joinShellWords([appId]), { env: { [DISPLAY_ENV]: displayRequestText(display) } });
      },
      desktop: () => desktop.view(),
      openOnDesktop: (peer, appId) => desktop.open(peer, appId),
      stopOnDesktop: (id) => desktop.stop(id),
      onChange: (listener) => {
        changes.on('change', listener);
        return () => { changes.off('change', listener); };
      },
    };

    const handlers = {
      status: () => ({ name, id: identity.fingerprint, port: ssh.port, sessions: sessions.count, capacity: sessions.capacity, apps: shared().apps.length, catalogVersion: shared().version }),
      apps: () => catalogView(shared()),
      requests: () => services.requests(),
      decide: (params: Record<string, unknown>) => {
        const decision = text(params, 'decision');
        if (decision !== 'allow' && decision !== 'always' && decision !== 'deny') throw new EbpError('USAGE', `unknown decision "${decision}"`);
        return services.decide(text(params, 'id'), decision satisfies Decision);
      },
      sessions: async () => services.sessions(),
      stop: async (params: Record<string, unknown>) => services.stop(text(params, 'id')),
      trusted: () => services.trusted(),
      trust: async (params: Record<string, unknown>) => {
        const nameParam = params['name'];
        const added = await trust.add(text(params, 'key'), typeof nameParam === 'string' ? { name: nameParam } : {});
        changed('trusted');
        return added;
      },
      untrust: async (params: Record<string, unknown>) => services.untrust(text(params, 'id')),
      query: async (params: Record<string, unknown>) => {
        const query = text(params, 'query');
        if (!/^ebp:[a-z]+( [A-Za-z0-9][A-Za-z0-9._-]{0,127})?$/.test(query)) throw new EbpError('USAGE', `unknown query "${query.slice(0, 32)}"`);
        const { connection } = await connect(text(params, 'peer'));
        return connection.query(query);
      },
      peers: () => ({ self: { name: discovery?.instanceName ?? name, id: identity.fingerprint, port: ssh.port }, peers: directory.list() }),
      'peers-add': async (params: Record<string, unknown>) => {
        const added = await staticPeers.add(text(params, 'endpoint'));
        await directory.checkStatic();
        return added;
      },
      'peers-remove': async (params: Record<string, unknown>) => staticPeers.remove(text(params, 'endpoint')),
      'peers-forget': async (params: Record<string, unknown>) => knownHosts.forget(text(params, 'endpoint')),
      resolve: (params: Record<string, unknown>) => resolveWithFallback(text(params, 'peer'), typeof params['address'] === 'string' ? params['address'] : undefined, (peer) => directory.resolve(peer)),
      rename: (params: Record<string, unknown>) => {
        const wanted = text(params, 'name');
        const problem = displayNameProblem(wanted);
        if (problem !== undefined) throw new EbpError('USAGE', `invalid name: ${problem}`);
        if (discovery === undefined) throw new EbpError('USAGE', 'discovery is off, so there is no announced name to change', { hint: 'restart with --name NAME' });
        discovery.rename(wanted);
        return { name: wanted };
      },
      'pool-apps': async () => {
        const pool: Record<string, { id: string; name: string; comment: string; terminal: boolean; peers: string[] }> = {};
        const own = catalogView(shared()).apps.map((app) => ({ app, peer: `${discovery?.instanceName ?? name} (this machine)` }));
        const remote = await Promise.all(directory.list().filter(usable).map(async (view) => {
          try {
            return (await peerCatalog(view)).map((app) => ({ app, peer: view.name }));
          } catch {
            return [];
          }
        }));
        for (const { app, peer } of [...own, ...remote.flat()]) {
          const entry = pool[app.id] ?? { id: app.id, name: app.name, comment: app.comment, terminal: app.terminal, peers: [] };
          if (!entry.peers.includes(peer)) entry.peers.push(peer);
          pool[app.id] = entry;
        }
        return Object.values(pool).sort((a, b) => a.name.localeCompare(b.name));
      },
      pick: async (params: Record<string, unknown>) => {
        const app = text(params, 'app');
        const loadOf = (view: PeerView): number => {
          const [running = 0, capacity = 1] = (view.load ?? '0/1').split('/').map(Number);
          return capacity > 0 ? running / capacity : 1;
        };
        const candidates = directory.list().filter(usable).sort((a, b) => loadOf(a) - loadOf(b));
        for (const view of candidates) {
          try {
            if ((await peerCatalog(view)).some((entry) => entry.id === app)) return { peer: view.id ?? `${view.addresses[0] ?? ''}:${view.port}`, name: view.name };
          } catch {
            // unreachable now: try the next one
          }
        }
        throw new EbpError('NOT_FOUND', `no verified peer in the pool offers "${app.slice(0, 64)}"`, { hint: 'see `ebp apps --all`' });
      },
      reload: async () => {
        catalog = await catalogFromConfig(config, options.env);
        announce();
        return { apps: catalog.apps.length, version: catalog.version };
      },
    };
    const streams = {
      sandbox: async (params: Record<string, unknown>, socket: Socket, leftover: Buffer) => relaySandbox(engine, params, socket, leftover),
      run: async (params: Record<string, unknown>, socket: Socket, leftover: Buffer) => {
        const command = params['command'];
        if (!Array.isArray(command) || command.length === 0 || !command.every((word): word is string => typeof word === 'string')) {
          throw new EbpError('USAGE', 'the launch names no app');
        }
        const pty = params['pty'] as { term: string; cols: number; rows: number } | undefined;
        const env = (params['env'] ?? {}) as Record<string, string>;
        // X11: the CLI made the (untrusted) cookie; this daemon connects the launch's X channels
        // to that display, so warm launches stay warm.
        const x11 = params['x11'] === undefined ? undefined : validateLocalDisplay(params['x11']);
        const address = params['address'];
        const { connection, target } = await connect(text(params, 'peer'), typeof address === 'string' ? address : undefined);
        const callerStdio = params['callerStdio'] === true;
        const caller = callerStdio ? callerPid(socket) : undefined;
        // An input on /dev/null ends with the request (one message fewer for the peer mid-launch).
        const inputEnded = callerInputEmpty(caller);
        const started = connection.exec(joinShellWords(command), { ...(pty === undefined ? {} : { pty }), env, ...(x11 === undefined ? {} : { x11 }), ...(inputEnded ? { inputEnded } : {}) });
        // The CLI's own terminal or pipes, opened here so the bytes skip the CLI (caller-stdio.ts):
        // its output while the request travels to the peer (a few tenths of a millisecond of
        // system calls off the launch's path), its input only once the launch runs, so that
        // nothing is read from it for a launch that fails.
        const output = callerStdio ? openCallerStdio(caller, { stdin: false, stdout: true, stderr: true }) : undefined;
        let remote: Awaited<typeof started>;
        try {
          remote = await started;
        } catch (error) {
          output?.destroy();
          throw error;
        }
        const where = target.view?.name ?? endpointText(connection.endpoint);
        const local = output === undefined ? undefined : combineCallerStdio(output, openCallerStdio(caller, { stdin: true, stdout: false, stderr: false }));
        socket.write(`${JSON.stringify({ ok: true, result: { peer: where, fingerprint: connection.fingerprint, ...(local === undefined ? {} : { stdio: local.taken }) } })}\n`);
        socket.resume();
        socket.once('close', () => {
          remote.close();
          local?.destroy();
        });
        await relayToProcess(socket, remote, leftover, local);
      },
    };
    const web = await startWeb({
      ui: options.ui ?? (config.ui.enabled ? { port: config.ui.port } : false), explicit: options.ui !== undefined, stateDir: paths.stateDir, log,
      services,
    });
    approvals.on('added', () => { changed('requests'); });
    approvals.on('settled', () => { changed('requests'); });
    sessions.on('started', () => { changed('sessions'); changed('pool'); });
    sessions.on('ended', () => { changed('sessions'); changed('pool'); });
    // Peers come and go through discovery, static checks and connections: watch the directory.
    let poolSeen = '';
    const poolWatch = setInterval(() => {
      const now = JSON.stringify(directory.list().map((view) => [view.name, view.id, view.status, view.trusted, view.load, view.catalogVersion]));
      if (now !== poolSeen) {
        poolSeen = now;
        changed('pool');
      }
    }, POOL_WATCH_MS);
    poolWatch.unref();
    timers.push(poolWatch);
    const ui = (): { url: string; port: number } => {
      if (web === undefined) {
        throw new EbpError('USAGE', 'this daemon serves no web page: it is turned off, or its port was in use (the daemon\'s log says which)', {
          hint: 'restart it with --ui-port N (a free port), without --no-ui, or with [ui] enabled = true',
        });
      }
      return { url: web.url, port: web.port };
    };
    const control = await ControlServer.listen(controlSocketPath(paths.runtimeDir), { ...handlers, ui }, streams);
    log('daemon-started', { name: discovery?.instanceName ?? name, id: identity.fingerprint, port: ssh.port, apps: catalog.apps.length, control: control.path, state: paths.stateDir, discovery: discovery === undefined ? 'off' : 'on' });
    if (web !== undefined) log('ui-started', { url: `http://127.0.0.1:${web.port}/` });
    return new Daemon({ identity, config, name: discovery?.instanceName ?? name, ssh, control, sessions, approvals, pool, log, catalog, discovery, timers, web, desktop, spares });
  }

  get port(): number {
    return this.#ssh.port;
  }

  /** The web page's port, when it is on. */
  get uiPort(): number | undefined {
    return this.#web?.port;
  }

  get catalog(): Catalog {
    return this.#catalog;
  }

  /** Ends every session cleanly, then stops listening. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#log('daemon-stopping', { sessions: this.#sessions.count });
      this.#approvals.close();
      for (const timer of this.#timers) clearInterval(timer);
      // Goodbyes first, so that peers drop us within a second.
      await this.#discovery?.close();
      await this.#control.close();
      await this.#web?.close();
      this.#desktop.close();
      await this.#sessions.stopAll();
      await this.#spares.close();
      await this.#ssh.close();
      this.#pool.close();
      this.#log('daemon-stopped');
    })();
    return this.#closing;
  }
}
