// One error type for the whole project: a stable code, a message a user can act on, and a cause.
// Entry points (CLI, SSH, HTTP) translate codes into their own status through one table here.

export type ErrorCode =
  | 'USAGE'
  | 'SANDBOX_SETUP_FAILED'
  | 'SANDBOX_UNSUPPORTED'
  | 'CGROUP_UNAVAILABLE'
  | 'SECCOMP_UNAVAILABLE'
  | 'NETWORK_SETUP_FAILED'
  | 'COMMAND_NOT_FOUND'
  | 'COMMAND_NOT_EXECUTABLE'
  | 'PRIVILEGE_REQUIRED'
  | 'CONFIG_INVALID'
  | 'STATE_INVALID'
  | 'APP_NOT_SHARED'
  | 'CATALOG_INVALID'
  | 'KEY_INVALID'
  | 'PEER_UNTRUSTED'
  | 'HOST_KEY_CHANGED'
  | 'INTERNAL'
  // Launches between peers (exit 255 for the transport, as OpenSSH's ssh does).
  | 'NOT_FOUND'
  | 'RATE_LIMITED'
  | 'PEER_UNREACHABLE'
  | 'SESSION_BROKEN'
  | 'APPROVAL_DENIED'
  | 'APPROVAL_TIMEOUT'
  | 'DAEMON_NOT_RUNNING'
  // The person's X display (X11 forwarding).
  | 'DISPLAY_UNAVAILABLE';

interface StatusRow {
  /** Exit status of the `ebp` command. */
  readonly exit: number;
  /** HTTP status for the local web API. */
  readonly http: number;
}

/** Code → status on every transport. 125/126/127 follow POSIX shells and container runtimes. */
export const STATUS: Readonly<Record<ErrorCode, StatusRow>> = {
  USAGE: { exit: 2, http: 400 },
  SANDBOX_SETUP_FAILED: { exit: 125, http: 500 },
  SANDBOX_UNSUPPORTED: { exit: 125, http: 501 },
  CGROUP_UNAVAILABLE: { exit: 125, http: 500 },
  SECCOMP_UNAVAILABLE: { exit: 125, http: 500 },
  NETWORK_SETUP_FAILED: { exit: 125, http: 500 },
  COMMAND_NOT_FOUND: { exit: 127, http: 404 },
  COMMAND_NOT_EXECUTABLE: { exit: 126, http: 400 },
  PRIVILEGE_REQUIRED: { exit: 125, http: 403 },
  CONFIG_INVALID: { exit: 78, http: 500 },
  STATE_INVALID: { exit: 125, http: 500 },
  APP_NOT_SHARED: { exit: 1, http: 404 },
  CATALOG_INVALID: { exit: 1, http: 500 },
  KEY_INVALID: { exit: 65, http: 400 },
  PEER_UNTRUSTED: { exit: 77, http: 403 },
  HOST_KEY_CHANGED: { exit: 255, http: 409 },
  INTERNAL: { exit: 125, http: 500 },
  NOT_FOUND: { exit: 1, http: 404 },
  RATE_LIMITED: { exit: 1, http: 429 },
  PEER_UNREACHABLE: { exit: 255, http: 502 },
  SESSION_BROKEN: { exit: 255, http: 502 },
  APPROVAL_DENIED: { exit: 1, http: 403 },
  APPROVAL_TIMEOUT: { exit: 1, http: 408 },
  DAEMON_NOT_RUNNING: { exit: 1, http: 503 },
  DISPLAY_UNAVAILABLE: { exit: 1, http: 502 },
};

export class EbpError extends Error {
  override readonly name = 'EbpError';
  readonly code: ErrorCode;
  /** What the user can do about it, printed after the message. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
  }

  get exitStatus(): number {
    return STATUS[this.code].exit;
  }
}

/** Node's system errors carry `code`; this narrows an unknown catch value to one. */
export function isErrnoException(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}

export function errnoCode(error: unknown): string | undefined {
  return isErrnoException(error) ? error.code : undefined;
}
