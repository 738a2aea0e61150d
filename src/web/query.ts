// The query parts the page's WebSockets share: which app on which peer, and bounded numbers.
import { EbpError } from '../lib/errors.js';

/** A fingerprint, a name or HOST:PORT, as the page names a peer. */
export const PEER_TEXT = /^[A-Za-z0-9:+/=.@[\]_ -]{1,128}$/;
export const APP_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** ?peer=TARGET&app=ID, validated. */
export function launchTarget(params: URLSearchParams): { peer: string; app: string } {
  const peer = params.get('peer') ?? '';
  const app = params.get('app') ?? '';
  if (!PEER_TEXT.test(peer)) throw new EbpError('USAGE', 'peer must be a fingerprint, a name or HOST:PORT');
  if (!APP_ID.test(app)) throw new EbpError('USAGE', 'app must be an app id');
  return { peer, app };
}

/** A whole number from `min` to `max` (the message names it and, when given, its unit). */
export function boundedInteger(value: string | null, name: string, min: number, max: number, unit = ''): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) {
    throw new EbpError('USAGE', `${name} must be a whole number${unit === '' ? '' : ` of ${unit}`} from ${min} to ${max}`);
  }
  return number;
}
