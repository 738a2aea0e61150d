// Which host uid runs the sandboxes. A daemon running as root must never run bwrap as root with a
// user namespace: the sandbox's uid would then map to host root. As root we drop to a dedicated
// unprivileged system user (made by `ebp setup`); as an ordinary user we use our own uid.
import { readFileSync } from 'node:fs';
import { EbpError } from '../lib/errors.js';

/** The host account that owns every sandbox when the daemon runs as root. */
export const SANDBOX_HOST_USER = 'ebp-sandbox';

export interface HostIdentity {
  readonly uid: number;
  readonly gid: number;
  /** True when we must switch to this identity when spawning (we are root). */
  readonly switchUser: boolean;
  readonly name: string;
}

export function lookupUser(name: string, passwdFile = '/etc/passwd'): { uid: number; gid: number; home: string } | undefined {
  for (const line of readFileSync(passwdFile, 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] !== name || fields.length < 7) continue;
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid, gid, home: fields[5] ?? '/' };
  }
  return undefined;
}

export function sandboxIdentity(): HostIdentity {
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  if (uid !== 0) return { uid, gid, switchUser: false, name: process.env['USER'] ?? String(uid) };
  const user = lookupUser(SANDBOX_HOST_USER);
  if (user === undefined) {
    throw new EbpError('PRIVILEGE_REQUIRED', `running as root, but the system user "${SANDBOX_HOST_USER}" that sandboxes run as does not exist`, {
      hint: 'run `ebp setup` once as root (it creates the user and the cgroup directories), or run ebp as an ordinary user',
    });
  }
  if (user.uid === 0) {
    throw new EbpError('PRIVILEGE_REQUIRED', `the system user "${SANDBOX_HOST_USER}" has uid 0; sandboxes must not run as root`, {
      hint: `give "${SANDBOX_HOST_USER}" an unprivileged uid (userdel ${SANDBOX_HOST_USER}; ebp setup)`,
    });
  }
  return { uid: user.uid, gid: user.gid, switchUser: true, name: SANDBOX_HOST_USER };
}
