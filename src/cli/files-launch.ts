// `ebp run` with the person's files: forwarded file arguments and `--share` folders, served by a
// jailed sftp-server over an extra channel of the same SSH connection as the app.
//
// This always dials the peer from this process, even when the local daemon runs: the SFTP
// server must run here, as the person, with the person's files, and the daemon (possibly
// another user, e.g. root) must not serve them. A peer given by name or fingerprint is resolved
// by the daemon to its address and key first; without a daemon only HOST:PORT works.
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { callDaemon } from '../control/client.js';
import { checkJail, planFiles, startJail, type FilesPlan, type Jail } from '../files/exports.js';
import { encodeFilesSpec, FILES_CHANNEL, FILES_ENV, newToken } from '../files/spec.js';
import { EbpError } from '../lib/errors.js';
import { addressTarget } from '../peer/fallback.js';
import type { StatePaths } from '../config/paths.js';
import { hostLayout } from '../sandbox/host-layout.js';
import { joinShellWords } from '../transport/shell-words.js';
import { parseEndpoint, type Endpoint } from '../transport/ssh-client.js';
import { DEFAULT_PEER_PORT, type PeerLaunch } from './peer-access.js';
import type { LaunchSpec } from './run-request.js';
import { optimizeSooner } from '../lib/tier-up.js';

export interface FilesLaunchSpec extends LaunchSpec {
  readonly shares: readonly string[];
  readonly files: readonly string[];
}

interface AppView { readonly id: string; readonly takesFiles?: string }

async function target(paths: StatePaths, peer: string, address: string | undefined): Promise<{ endpoint: Endpoint; expectedFingerprint?: string }> {
  try {
    const resolved = (await callDaemon(paths.runtimeDir, 'resolve', { peer, ...(address === undefined ? {} : { address }) })) as { host: string; port: number; expectedFingerprint?: string };
    return { endpoint: { host: resolved.host, port: resolved.port }, ...(resolved.expectedFingerprint === undefined ? {} : { expectedFingerprint: resolved.expectedFingerprint }) };
  } catch (error) {
    if (!(error instanceof EbpError) || error.code !== 'DAEMON_NOT_RUNNING') throw error;
  }
  if (address !== undefined) {
    // A launcher's peer without the daemon: its key at its last known address.
    const fallback = addressTarget(peer, address);
    return { endpoint: { host: fallback.host, port: fallback.port }, ...(fallback.expectedFingerprint === undefined ? {} : { expectedFingerprint: fallback.expectedFingerprint }) };
  }
  return { endpoint: parseEndpoint(peer, DEFAULT_PEER_PORT) };
}

/** bwrap's absolute path, or its bare name (which checkJail refuses, naming the fix). */
function findBwrap(): string {
  for (const candidate of ['/usr/bin/bwrap', '/bin/bwrap', '/usr/local/bin/bwrap']) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return 'bwrap';
}

/**
 * Dials the peer, works out what to share (asking the peer whether the app takes files when an
 * argument names a local file), and launches; when in the end nothing is shared, the launch is
 * a plain one on this connection.
 */
export async function launchWithFiles(paths: StatePaths, spec: FilesLaunchSpec): Promise<PeerLaunch> {
  const [app, ...args] = spec.command;
  if (app === undefined) throw new EbpError('USAGE', 'no app named');
  const { connectTo } = await import('./peer-direct.js');
  const where = await target(paths, spec.peer, spec.address);
  const connection = await connectTo(paths, where.endpoint, where.expectedFingerprint);
  // A terminal session relayed by this process, as in launchDirect (lib/tier-up.ts).
  if (spec.pty !== undefined) optimizeSooner();
  let jail: Jail | undefined;
  let filesChannel: { close(): void } | undefined;
  try {
    let autoFiles = false;
    if (args.length > 0) {
      const apps = (JSON.parse(await connection.query('ebp:apps')) as { apps: AppView[] }).apps;
      const takes = apps.find((entry) => entry.id === app)?.takesFiles;
      autoFiles = takes !== undefined && takes !== 'none';
    }
    const plan: FilesPlan = planFiles({ shares: spec.shares, files: spec.files, args, autoFiles, home: homedir(), cwd: process.cwd() });
    const command = [app, ...plan.args];
    const base = { ...(spec.pty === undefined ? {} : { pty: spec.pty }), ...(spec.x11 === undefined ? {} : { x11: spec.x11 }) };
    if (plan.mounts.length === 0) {
      const remote = await connection.exec(joinShellWords(command), { ...base, env: spec.env });
      return { remote, done: () => { connection.close(); } };
    }
    const bwrap = findBwrap();
    const layout = hostLayout();
    await checkJail(bwrap, plan.exports, layout);
    const token = newToken(randomBytes);
    // The SFTP channel first: the host parks it for this connection; the launch claims it.
    const channel = await connection.exec(`${FILES_CHANNEL} ${token}`);
    filesChannel = channel;
    jail = startJail(bwrap, plan.exports, layout, { input: channel.stdout, output: channel.stdin, hello: channel.stderr });
    const env = { ...spec.env, [FILES_ENV]: encodeFilesSpec({ token, mounts: plan.mounts }) };
    const remote = await connection.exec(joinShellWords(command), { ...base, env });
    const running = jail;
    return {
      remote,
      done: () => {
        channel.close();
        running.close();
        connection.close();
      },
    };
  } catch (error) {
    filesChannel?.close();
    jail?.close();
    connection.close();
    throw error;
  }
}
