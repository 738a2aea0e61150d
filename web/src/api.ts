// The page's calls to its daemon (same origin; the token rides in an HttpOnly cookie).

export interface AppView {
  readonly id: string;
  readonly name: string;
  readonly comment: string;
  readonly terminal: boolean;
  readonly hasIcon: boolean;
}

export interface PoolPeer {
  readonly target: string;
  readonly name: string;
  readonly id: string | undefined;
  readonly status: string;
  readonly trusted: boolean;
  readonly load: string | undefined;
  readonly apps: readonly AppView[];
  readonly problem?: string;
}

export interface PoolView {
  readonly self: { readonly name: string; readonly id: string };
  readonly peers: readonly PoolPeer[];
}

export interface PendingRequest {
  readonly id: string;
  readonly peerId: string;
  readonly peerName: string;
  readonly app: string;
  readonly appName: string;
}

export interface SessionView {
  readonly id: string;
  readonly peerId: string;
  readonly peerName: string;
  readonly app: string;
  readonly startedAt: string;
  readonly cpuSeconds?: number;
  readonly memoryBytes?: number;
}

export interface TrustedKey {
  readonly fingerprint: string;
  readonly name: string;
  readonly addedAt: string;
}

export interface SharedApp extends AppView {
  readonly shared: boolean;
}

export interface DesktopLaunch {
  readonly id: string;
  readonly app: string;
  readonly peer: string;
  readonly peerName: string;
  readonly state: 'starting' | 'waiting' | 'running' | 'ended';
  readonly startedAt: string;
  readonly outcome?: string;
}

export interface DesktopView {
  /** The daemon's display, when apps can open there. */
  readonly display: string | undefined;
  readonly launches: readonly DesktopLaunch[];
}

export type Topic = 'pool' | 'requests' | 'sessions' | 'trusted' | 'shared' | 'desktop';

export class ApiError extends Error {}

async function answer<T>(response: Response): Promise<T> {
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = (body as { error?: { message?: string; hint?: string } } | undefined)?.error;
    throw new ApiError(error?.message === undefined ? `HTTP ${response.status}` : `${error.message}${error.hint === undefined ? '' : ` (${error.hint})`}`);
  }
  return body as T;
}

export async function get<T>(path: string): Promise<T> {
  return answer<T>(await fetch(path, { credentials: 'same-origin' }));
}

export async function post<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
  return answer<T>(await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  }));
}
