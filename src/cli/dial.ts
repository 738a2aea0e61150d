// What the CLI does when it dials a peer itself, with the SSH library: a launch or a query when no
// local daemon runs (peer-direct.ts), a launch with the person's files (files-launch.ts). Each
// is loaded only when used.
//
// The lean bundle of `ebp run` (dist/ebp-run.cjs, see scripts/bundle.mjs) has dial-apart.ts in
// this module's place: there these functions come from a bundle of their own, dist/ebp-dial.cjs,
// made from this file, so that a launch through the daemon never reads the SSH library.
import type { StatePaths } from '../config/paths.js';
import type { LocalDisplay } from '../display/x11-local.js';
import type { FilesLaunchSpec } from './files-launch.js';
import type { PeerLaunch } from './peer-access.js';
import type { LaunchSpec } from './run-request.js';

/** Dials the peer and starts the launch (no local daemon). */
export async function launchDirect(paths: StatePaths, spec: LaunchSpec, display?: Promise<LocalDisplay | undefined>): Promise<PeerLaunch> {
  return (await import('./peer-direct.js')).launchDirect(paths, spec, display);
}

/** Dials the peer and asks it a query (no local daemon). */
export async function queryDirect(paths: StatePaths, peer: string, query: string): Promise<string> {
  return (await import('./peer-direct.js')).queryDirect(paths, peer, query);
}

/** Dials the peer, serves the files from here and starts the launch. */
export async function launchWithFiles(paths: StatePaths, spec: FilesLaunchSpec): Promise<PeerLaunch> {
  return (await import('./files-launch.js')).launchWithFiles(paths, spec);
}
