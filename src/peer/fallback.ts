// Reaching a peer by its key when the pool does not list it: a launcher (`ebp run --address`)
// carries the peer's full fingerprint and the address it was last reached at. The fingerprint
// stays the authority: at the fallback address the host key must be exactly that one.
import { EbpError } from '../lib/errors.js';
import { isFingerprint } from './keys.js';
import type { PeerTarget } from './directory.js';
import { parseEndpoint } from '../transport/ssh-client.js';

export const DEFAULT_PORT = 20101;

/** The fallback target for PEER (a full fingerprint) at ADDRESS (HOST:PORT). */
export function addressTarget(peer: string, address: string): PeerTarget {
  if (!isFingerprint(peer)) {
    throw new EbpError('USAGE', `--address needs the peer named by its full key fingerprint (SHA256:...), not "${peer.slice(0, 80)}"`, {
      hint: 'ebp run --address HOST:PORT SHA256:... APP; see `ebp peers` for fingerprints',
    });
  }
  const endpoint = parseEndpoint(address, DEFAULT_PORT);
  return { host: endpoint.host, port: endpoint.port, expectedFingerprint: peer };
}

/**
 * The pool's answer for PEER when it has one; else, when a fallback address is given, that
 * address with the fingerprint enforced. Only "not in the pool" falls back: an impostor or an
 * ambiguous name stays an error.
 */
export function resolveWithFallback(peer: string, address: string | undefined, resolve: (peer: string) => PeerTarget): PeerTarget {
  if (address === undefined) return resolve(peer);
  const fallback = addressTarget(peer, address);
  try {
    return resolve(peer);
  } catch (error) {
    if (error instanceof EbpError && (error.code === 'NOT_FOUND' || error.code === 'PEER_UNREACHABLE')) return fallback;
    throw error;
  }
}
