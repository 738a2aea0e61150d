// `ebp up`: the peer daemon. Composes the pieces: identity, configuration, catalogue, trust and
// approvals, the sandbox engine, the SSH server peers launch through, the control socket the
// local CLI talks to, and the connection pool for launches on other peers.
import type { Socket } from 'node:net';
import type { Catalog } from '../catalog/catalog.js';
import { loadConfig, defaultConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { StatePaths } from '../config/paths.js';
import { controlSocketPath } from '../control/client.js';
import { relayToProcess } from '../control/frames.js';
import { ControlServer } from '../control/server.js';
import { Approvals, type Decision } from '../host/approvals.js';
import { LaunchService } from '../host/launch.js';
import { Sessions } from '../host/sessions.js';
import { EbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { AuditLog, auditLogPath } from '../peer/audit.js';
import { loadOrCreateIdentity, type Identity } from '../peer/identity.js';
import { KnownHosts } from '../peer/known-hosts.js';
import { TrustStore } from '../peer/trust-store.js';
import { createEngine, type SandboxEngine } from '../sandbox/engine.js';
import { PeerPool } from '../transport/peer-pool.js';
import { channelProcess } from '../transport/remote-process.js';
import { joinShellWords } from '../transport/shell-words.js';
import { endpointText, parseEndpoint } from '../transport/ssh-client.js';
import { SshServer } from '../transport/ssh-server.js';
import { catalogFromConfig, catalogView } from './catalog-source.js';

export interface DaemonOptions {
  readonly paths: StatePaths;
  readonly configFile?: string;
  readonly name?: string;
  readonly port?: number;
  /** Listen address of the SSH server (default: all). */
  readonly host?: string;
  readonly log: Logger;
  readonly env?: NodeJS.ProcessEnv;
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
  #catalog: Catalog;
  #closing: Promise<void> | undefined;

  private constructor(parts: {
    identity: Identity; config: Config; name: string; ssh: SshServer; control: ControlServer; sessions: Sessions;
    approvals: Approvals; pool: PeerPool; log: Logger; catalog: Catalog;
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
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const { paths, log } = options;
    const config = await loadConfig(options.configFile ?? defaultConfigFile(paths.configDir), { required: options.configFile !== undefined });
    const name = options.name ?? config.name;
    const identity = await loadOrCreateIdentity(paths.stateDir);
    const engine: SandboxEngine = await createEngine({ cacheDir: paths.stateDir });
    if (engine.cgroups === undefined) log('cgroups-unavailable', { reason: engine.cgroupProblem ?? 'unknown', fallback: 'rlimits' });
    let catalog = await catalogFromConfig(config, options.env);
    for (const problem of catalog.problems) log('catalog-problem', { file: problem.file, reason: problem.reason });
    const trust = await TrustStore.open(paths.stateDir);
    const knownHosts = await KnownHosts.open(paths.stateDir);
    const approvals = new Approvals({ timeoutMs: config.approval.timeoutMs, ratePerMinute: config.approval.rateLimit });
    const sessions = new Sessions({ capacity: DEFAULT_CAPACITY });
    const audit = new AuditLog(auditLogPath(paths.stateDir));
    const launch = new LaunchService({
      catalog: () => catalog,
      trust,
      approvals,
      sessions,
      audit,
      engine,
      approvalPolicy: () => config.approval.policy,
      stateDir: paths.stateDir,
    });
    approvals.on('added', (request) => { log('approval-requested', { request: request.id, peer: request.peerId, name: request.peerName, app: request.app }); });
    approvals.on('settled', (request, outcome) => { log('approval-settled', { request: request.id, outcome }); });
    const ssh = await SshServer.listen({
      hostKey: identity.privateKey,
      port: options.port ?? config.port,
      ...(options.host === undefined ? {} : { host: options.host }),
      launch,
      queries: { apps: () => catalogView(catalog) },
      log,
    });
    const pool = new PeerPool({ identity, knownHosts, username: name });

    const handlers = {
      status: () => ({ name, id: identity.fingerprint, port: ssh.port, sessions: sessions.count, capacity: sessions.capacity, apps: catalog.apps.length, catalogVersion: catalog.version }),
      apps: () => catalogView(catalog),
      requests: () => approvals.list(),
      decide: (params: Record<string, unknown>) => {
        const decision = text(params, 'decision');
        if (decision !== 'allow' && decision !== 'always' && decision !== 'deny') throw new EbpError('USAGE', `unknown decision "${decision}"`);
        return approvals.decide(text(params, 'id'), decision satisfies Decision);
      },
      sessions: async () => sessions.list(),
      stop: async (params: Record<string, unknown>) => {
        const exit = await sessions.stop(text(params, 'id'));
        return { code: exit.code, reason: exit.reason };
      },
      trusted: () => trust.list(),
      trust: async (params: Record<string, unknown>) => {
        const nameParam = params['name'];
        return trust.add(text(params, 'key'), typeof nameParam === 'string' ? { name: nameParam } : {});
      },
      untrust: async (params: Record<string, unknown>) => trust.remove(text(params, 'id')),
      query: async (params: Record<string, unknown>) => {
        const query = text(params, 'query');
        if (!/^ebp:[a-z]+$/.test(query)) throw new EbpError('USAGE', `unknown query "${query.slice(0, 32)}"`);
        const connection = await pool.get(parseEndpoint(text(params, 'peer'), 20101));
        return connection.query(query);
      },
      reload: async () => {
        catalog = await catalogFromConfig(config, options.env);
        return { apps: catalog.apps.length, version: catalog.version };
      },
    };
    const streams = {
      run: async (params: Record<string, unknown>, socket: Socket, leftover: Buffer) => {
        const endpoint = parseEndpoint(text(params, 'peer'), 20101);
        const command = params['command'];
        if (!Array.isArray(command) || command.length === 0 || !command.every((word): word is string => typeof word === 'string')) {
          throw new EbpError('USAGE', 'the launch names no app');
        }
        const pty = params['pty'] as { term: string; cols: number; rows: number } | undefined;
        const env = (params['env'] ?? {}) as Record<string, string>;
        const connection = await pool.get(endpoint);
        const channel = await connection.exec(joinShellWords(command), { ...(pty === undefined ? {} : { pty }), env });
        socket.write(`${JSON.stringify({ ok: true, result: { peer: endpointText(endpoint), fingerprint: connection.fingerprint } })}\n`);
        socket.resume();
        socket.once('close', () => { channel.close(); });
        await relayToProcess(socket, channelProcess(channel, endpointText(endpoint)), leftover);
      },
    };
    const control = await ControlServer.listen(controlSocketPath(paths.runtimeDir), handlers, streams);
    log('daemon-started', { name, id: identity.fingerprint, port: ssh.port, apps: catalog.apps.length, control: control.path, state: paths.stateDir });
    return new Daemon({ identity, config, name, ssh, control, sessions, approvals, pool, log, catalog });
  }

  get port(): number {
    return this.#ssh.port;
  }

  get catalog(): Catalog {
    return this.#catalog;
  }

  /** Ends every session cleanly, then stops listening. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#log('daemon-stopping', { sessions: this.#sessions.count });
      this.#approvals.close();
      await this.#control.close();
      await this.#sessions.stopAll();
      await this.#ssh.close();
      this.#pool.close();
      this.#log('daemon-stopped');
    })();
    return this.#closing;
  }
}
