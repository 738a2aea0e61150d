// The page's calls to its daemon (same origin; the token rides in an HttpOnly cookie).

// The shapes come from the daemon's own definitions (plain types, erased from the bundle).
export type {
  AppView, ChangeTopic, DesktopLaunchView, DesktopView, PendingRequest, PoolPeer, PoolView, SessionView, SharedAppView, TrustedKey,
} from '../../src/lib/views.js';

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
