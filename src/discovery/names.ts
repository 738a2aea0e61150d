// Names: case-insensitive comparison (RFC 6762 §16: ASCII letters only), display sanitizing of
// received instance names, conflict renaming ("name (2)") and our per-daemon host label.
import { createHash } from 'node:crypto';

import { EbpError } from '../lib/errors.js';
import type { Name } from './wire.js';

export const SERVICE_TYPE = '_ebrainpool._tcp';
export const PROTOCOL_VERSION = '1';

export const LOCAL: Name = ['local'];
export const SERVICE_NAME: Name = ['_ebrainpool', '_tcp', 'local'];
export const SERVICES_ENUMERATION: Name = ['_services', '_dns-sd', '_udp', 'local'];

const MAX_LABEL_BYTES = 63;

/** ASCII-only lower case: other characters compare as they are (RFC 6762 §16). */
export function foldLabel(label: string): string {
  return label.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/** A map key for a name: equal for names that match case-insensitively, distinct otherwise. */
export function nameKey(name: Name): string {
  return name.map((label) => foldLabel(label).replace(/[\\.]/g, (c) => `\\${c}`)).join('.');
}

export function sameName(a: Name, b: Name): boolean {
  return a.length === b.length && nameKey(a) === nameKey(b);
}

/** Presentation form for logs (dots and backslashes inside labels escaped). */
export function nameText(name: Name): string {
  return `${name.map((label) => label.replace(/[\\.]/g, (c) => `\\${c}`)).join('.')}.`;
}

export function instanceFqdn(instance: string): Name {
  return [instance, ...SERVICE_NAME];
}

export function hostFqdn(host: string): Name {
  return [host, ...LOCAL];
}

/** The instance label of `<instance>._ebrainpool._tcp.local`, or undefined for other names. */
export function instanceOf(name: Name): string | undefined {
  if (name.length !== SERVICE_NAME.length + 1) return undefined;
  return sameName(name.slice(1), SERVICE_NAME) ? name[0] : undefined;
}

/** Cuts a string to at most `bytes` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, bytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= bytes) return text;
  let out = '';
  let used = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char, 'utf8');
    if (used + size > bytes) break;
    out += char;
    used += size;
  }
  return out;
}

// C0 and C1 controls, DEL, and the bidirectional overrides/isolates that can disguise text.
 
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** Text that is safe to print: control and bidi characters become U+FFFD. */
export function sanitizeText(text: string): string {
  return text.replace(UNSAFE, '\ufffd');
}

/** An injective, printable form of a label for keys: backslash and unsafe characters escaped. */
export function escapeLabel(label: string): string {
  return label.replace(/\\/g, '\\\\').replace(UNSAFE, (c) => `\\u{${c.codePointAt(0)?.toString(16) ?? ''}}`);
}

/** A received instance label made safe to display: no control characters, at most 63 bytes. */
export function displayInstance(label: string): string {
  return truncateUtf8(sanitizeText(label), MAX_LABEL_BYTES);
}

/** Checks the instance name we are asked to announce; returns it trimmed. */
export function checkInstanceName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === '') throw new EbpError('CONFIG_INVALID', 'discovery: the instance name is empty');
  if (sanitizeText(trimmed) !== trimmed) {
    throw new EbpError('CONFIG_INVALID', 'discovery: the instance name contains control characters');
  }
  if (Buffer.byteLength(trimmed, 'utf8') > MAX_LABEL_BYTES) {
    throw new EbpError('CONFIG_INVALID', `discovery: the instance name is longer than ${MAX_LABEL_BYTES} bytes`, {
      hint: 'DNS-SD instance names are one DNS label: at most 63 bytes of UTF-8',
    });
  }
  return trimmed;
}

/** The n-th name after conflicts: "name", "name (2)", "name (3)" ... (cut to fit 63 bytes). */
export function numberedInstance(base: string, n: number): string {
  if (n <= 1) return base;
  const suffix = ` (${n})`;
  return `${truncateUtf8(base, MAX_LABEL_BYTES - suffix.length).trimEnd()}${suffix}`;
}

/**
 * Our host label (`<label>.local` is the SRV target and carries our A/AAAA records). It must not
 * be the machine's own host name: avahi-daemon next to us publishes `<hostname>.local` with its
 * own address set. So: the wanted instance name in letters-digits-hyphens, then six hex digits of
 * a hash of (machine host name, instance name, port), so two daemons on one machine differ.
 */
export function hostLabelBase(instance: string, machineHostname: string, port: number): string {
  const ldh = foldLabel(instance.normalize('NFKD').replace(/[^\x20-\x7e]/g, ''))
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  const hash = createHash('sha256').update(`${machineHostname}\0${instance}\0${port}`).digest('hex').slice(0, 6);
  return `${ldh === '' ? 'ebp' : ldh}-${hash}`;
}

export function numberedHost(base: string, n: number): string {
  return n <= 1 ? base : `${base}-${n}`;
}
