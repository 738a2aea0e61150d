// The web page's secret: 32 random bytes (base64url) kept 0600 in the state folder, made on the
// daemon's first start with the page on. Whoever can read it can act as the owner in the page,
// so only the owner (and root) may read it; `ebp ui` gets it from the daemon's control socket.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';

const TOKEN_FILE = 'ui-token';
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export function tokenPath(stateDir: string): string {
  return join(stateDir, TOKEN_FILE);
}

/** The stored token, or a new one written 0600. A malformed file is replaced. */
export async function loadOrCreateToken(stateDir: string): Promise<string> {
  const path = tokenPath(stateDir);
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (TOKEN_SHAPE.test(text)) return text;
  } catch {
    // missing: make one
  }
  const token = randomBytes(32).toString('base64url');
  await writeFileAtomic(path, `${token}\n`, { mode: 0o600 });
  return token;
}
