// The data the daemon shows its clients: the web page (over HTTP) and `ebp ... --json` (over the
// control socket). Plain types without a single import, so that the page, which is built without
// Node's types, checks itself against these same definitions (web/src/api.ts) and the two
// cannot drift apart. Each domain re-exports the shapes it serves.

/** Which kind of files an app's Exec line takes (catalog/exec.ts). */
export type TakesFiles = 'none' | 'file' | 'files' | 'url' | 'urls';

/** What a peer learns about one shared app. */
export interface AppView {
  readonly id: string;
  readonly name: string;
  readonly comment: string;
  readonly terminal: boolean;
  readonly mimeTypes: readonly string[];
  readonly categories: readonly string[];
  readonly takesFiles: TakesFiles;
  readonly hasIcon: boolean;
}

/** How far a peer's identity is established (peer/directory.ts). */
export type PeerStatus = 'verified' | 'announced' | 'unverified' | 'pinned' | 'impostor' | 'unreachable';

/** One machine of the pool as the page shows it. */
export interface PoolPeer {
  /** What to launch on: a fingerprint, or HOST:PORT for a peer without a known id. */
  readonly target: string;
  readonly name: string;
  readonly id: string | undefined;
  readonly status: PeerStatus | 'self';
  readonly trusted: boolean;
  /** "running/capacity". */
  readonly load: string | undefined;
  readonly apps: readonly AppView[];
  /** Why its apps are not listed (unreachable, impostor...). */
  readonly problem?: string;
}

export interface PoolView {
  readonly self: { readonly name: string; readonly id: string };
  readonly peers: readonly PoolPeer[];
}

/** One app this machine has, and whether it is shared right now. */
export interface SharedAppView extends AppView {
  readonly shared: boolean;
}

/** What changed, so that the page fetches only that again. */
export type ChangeTopic = 'pool' | 'requests' | 'sessions' | 'trusted' | 'shared' | 'desktop';

/** A launch waiting for the owner's Allow or Deny (host/approvals.ts). */
export interface PendingRequest {
  readonly id: string;
  readonly peerId: string;
  readonly peerName: string;
  readonly app: string;
  readonly appName: string;
  readonly time: string;
}

/** A running launch on this host (host/sessions.ts). */
export interface SessionInfo {
  readonly id: string;
  readonly peerId: string;
  readonly peerName: string;
  readonly app: string;
  readonly startedAt: string;
  readonly terminal: boolean;
}

export interface SessionView extends SessionInfo {
  readonly cpuSeconds?: number;
  readonly memoryBytes?: number;
  readonly memoryPeakBytes?: number;
}

/** A key whose launches run without asking (peer/trust-store.ts). */
export interface TrustedKey {
  /** 'SHA256:...' of the key blob. */
  readonly fingerprint: string;
  /** The OpenSSH public key line. */
  readonly publicKey: string;
  /** Display name: given when added, else the key comment, else derived from the fingerprint. */
  readonly name: string;
  /** ISO 8601 time it was added. */
  readonly addedAt: string;
}

/**
 * A launch on this daemon's desktop (daemon/desktop.ts): starting; waiting for the peer's owner;
 * running (an X connection reached this display); ended.
 */
export type DesktopLaunchState = 'starting' | 'waiting' | 'running' | 'ended';

/** One launch on this desktop, as the page shows it. */
export interface DesktopLaunchView {
  readonly id: string;
  readonly app: string;
  readonly peer: string;
  readonly peerName: string;
  readonly state: DesktopLaunchState;
  readonly startedAt: string;
  /** How it ended ("status 0", "status 1: denied ..."), once ended. */
  readonly outcome?: string;
}

export interface DesktopView {
  /** The display windows open on, when usable. */
  readonly display: string | undefined;
  readonly launches: readonly DesktopLaunchView[];
}
