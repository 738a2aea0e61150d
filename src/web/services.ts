// What the web page may do, as the daemon provides it: the same service layer the control socket
// uses (approvals, sessions, trust store, the peer directory, launches on peers). The HTTP
// routes only translate; they hold no logic of their own.
import type { DesktopLaunchView, DesktopView } from '../daemon/desktop.js';
import type { VncDisplay } from '../display/vnc.js';
import type { IconFile } from '../catalog/icon-file.js';
import type { Decision, PendingRequest } from '../host/approvals.js';
import type { SessionView } from '../host/sessions.js';
import type { TrustedKey } from '../peer/trust-store.js';
import type { RemoteProcess } from '../transport/remote-process.js';
import type { ChangeTopic, PoolView, SharedAppView } from '../lib/views.js';




export type { ChangeTopic, PoolPeer, PoolView, SharedAppView } from '../lib/views.js';

export interface TerminalSize {
  readonly cols: number;
  readonly rows: number;
}

export interface WebServices {
  pool(): Promise<PoolView>;
  requests(): readonly PendingRequest[];
  decide(id: string, decision: Decision): PendingRequest;
  sessions(): Promise<readonly SessionView[]>;
  stop(id: string): Promise<{ code: number; reason: string }>;
  trusted(): readonly TrustedKey[];
  untrust(id: string): Promise<unknown>;
  shared(): readonly SharedAppView[];
  setShared(appId: string, shared: boolean): Promise<SharedAppView>;
  /** An app's icon: this machine's (no peer), or a peer's (validated, cached), or undefined. */
  icon(appId: string, peer: string | undefined): Promise<IconFile | undefined>;
  /** Runs an app on a peer in a terminal (the daemon's SSH connection to it). */
  openTerminal(peer: string, appId: string, size: TerminalSize): Promise<RemoteProcess>;
  /** Runs an app on a peer on its own display; stdout/stdin carry the RFB stream. */
  openDisplay(peer: string, appId: string, display: VncDisplay): Promise<RemoteProcess>;
  /** This daemon's display for "Open on this desktop" (undefined: none) and the apps open there. */
  desktop(): DesktopView;
  /** Runs a GUI app on a peer with its windows on this daemon's display (X11 forwarding, untrusted). */
  openOnDesktop(peer: string, appId: string): DesktopLaunchView;
  /** Stops an app open on this desktop (its session on the peer ends), or forgets an ended one. */
  stopOnDesktop(id: string): DesktopLaunchView;
  /** Subscribes to changes; returns the unsubscribe function. */
  onChange(listener: (topic: ChangeTopic) => void): () => void;
}
