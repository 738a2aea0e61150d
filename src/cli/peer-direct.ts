// The CLI dialling a peer itself, for when no local daemon runs.
import type { StatePaths } from '../config/paths.js';
import { loadOrCreateIdentity } from '../peer/identity.js';
import { KnownHosts } from '../peer/known-hosts.js';
import { loadConfig, defaultConfigFile } from '../config/load.js';
import { joinShellWords } from '../transport/shell-words.js';
import { connectPeer, parseEndpoint, type Endpoint, type PeerConnection } from '../transport/ssh-client.js';
import { addressTarget } from '../peer/fallback.js';
import type { LocalDisplay } from '../display/x11-local.js';
import { DEFAULT_PEER_PORT, type PeerLaunch } from './peer-access.js';
import type { LaunchSpec } from './run-request.js';
import { optimizeSooner } from '../lib/tier-up.js';

async function connect(paths: StatePaths, peer: string, address?: string): Promise<PeerConnection> {
  if (address !== undefined) {
    // A launcher's peer: its key at its last known address (no pool without the daemon).
    const target = addressTarget(peer, address);
    return connectTo(paths, { host: target.host, port: target.port }, target.expectedFingerprint);
  }
  return connectTo(paths, parseEndpoint(peer, DEFAULT_PEER_PORT));
}

/** Dials an endpoint with this machine's identity; `expectedFingerprint` pins the peer's key. */
export async function connectTo(paths: StatePaths, endpoint: Endpoint, expectedFingerprint?: string): Promise<PeerConnection> {
  const [identity, knownHosts, config] = await Promise.all([
    loadOrCreateIdentity(paths.stateDir),
    KnownHosts.open(paths.stateDir),
    loadConfig(defaultConfigFile(paths.configDir)),
  ]);
  return connectPeer(endpoint, { identity, knownHosts, username: config.name, ...(expectedFingerprint === undefined ? {} : { expectedFingerprint }) });
}

/** Dials the peer and starts the launch; `display` (X11) is awaited once the connection is up. */
export async function launchDirect(paths: StatePaths, spec: LaunchSpec, display?: Promise<LocalDisplay | undefined>): Promise<PeerLaunch> {
  const connection = await connect(paths, spec.peer, spec.address);
  let x11: LocalDisplay | undefined;
  try {
    x11 = (await display) ?? spec.x11;
  } catch (error) {
    connection.close();
    throw error;
  }
  // A terminal session: its keys and screen will go through this process. Connected, and before
  // the session's code first runs, V8 is told to optimize sooner (lib/tier-up.ts says why here).
  if (spec.pty !== undefined) optimizeSooner();
  const remote = await connection.exec(joinShellWords(spec.command), { ...(spec.pty === undefined ? {} : { pty: spec.pty }), env: spec.env, ...(x11 === undefined ? {} : { x11 }) });
  return {
    remote,
    done: () => {
      connection.close();
    },
  };
}

export async function queryDirect(paths: StatePaths, peer: string, query: string): Promise<string> {
  const connection = await connect(paths, peer);
  try {
    return await connection.query(query);
  } finally {
    connection.close();
  }
}
