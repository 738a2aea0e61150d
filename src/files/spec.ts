// The files of a launch, as the person's side describes them to the host: which exported tree
// (a shared folder `s/N`, a forwarded file `f/N/NAME`) appears where in the sandbox's home, and
// whether read-only. It travels in the app's exec request (env EBP_FILES, JSON) next to a token
// naming the SFTP channel that serves the tree. Pure: parsing, validation and encoding only.
//
// Threat: the host must not trust this text either way. A peer could aim a bind at
// `../../etc` or at a path holding another mount, or make two mounts overlap. Every field is
// checked here, at the boundary; everything past `parseFilesSpec` may trust the types.
import { EbpError } from '../lib/errors.js';

/** The environment variable of the exec request that carries the spec. */
export const FILES_ENV = 'EBP_FILES';
/** Exec command of the extra session channel that carries SFTP: `ebp:files TOKEN`. */
export const FILES_CHANNEL = 'ebp:files';

export const MAX_MOUNTS = 32;
export const MAX_SPEC_BYTES = 16 * 1024;
const MAX_DEST_LENGTH = 1024;
const MAX_DEST_PARTS = 16;
const MAX_NAME_BYTES = 255;
const TOKEN = /^[a-z0-9]{16,32}$/;
const SHARE_SOURCE = /^s\/(\d{1,2})$/;
const FILE_SOURCE = /^f\/(\d{1,2})\/([^/]+)$/;
// Control characters (C0, DEL, C1) and the bidi overrides that disguise names.
const UNSAFE_NAME = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

export interface FileMount {
  /** Where in the exported tree: `s/N` (a folder) or `f/N/NAME` (one file). */
  readonly source: string;
  /** Where inside the sandbox, relative to its home; normalized, never empty, no `..`. */
  readonly target: string;
  readonly readOnly: boolean;
}

export interface FilesSpec {
  /** Names the `ebp:files` channel of the same connection. */
  readonly token: string;
  readonly mounts: readonly FileMount[];
}

function bad(message: string): EbpError {
  return new EbpError('USAGE', `invalid file sharing request: ${message}`, {
    hint: 'this comes from the ebp client; update it on the person\'s side',
  });
}

/** One path component: not empty, not . or .., no NUL or control characters, at most 255 bytes. */
export function nameProblem(name: string): string | undefined {
  if (name === '') return 'an empty path component';
  if (name === '.' || name === '..') return `the component "${name}"`;
  if (name.includes('/') || name.includes('\0')) return 'a "/" or NUL inside a name';
  if (UNSAFE_NAME.test(name)) return 'a control character in a name';
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return 'a name longer than 255 bytes';
  return undefined;
}

/** A home-relative target: `a/b/c`, each part a valid name, bounded length and depth. */
export function targetProblem(target: string): string | undefined {
  if (target.startsWith('/')) return 'an absolute target';
  if (Buffer.byteLength(target) > MAX_DEST_LENGTH) return 'a target longer than 1024 bytes';
  const parts = target.split('/');
  if (parts.length > MAX_DEST_PARTS) return 'a target deeper than 16 folders';
  for (const part of parts) {
    const problem = nameProblem(part);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** One target is the other or lies inside it: binding both would hide or overlap. */
export function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

function field(object: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function parseMount(value: unknown, index: number): FileMount {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`mount ${index} is not an object`);
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) if (key !== 's' && key !== 'd' && key !== 'ro') throw bad(`mount ${index} has an unknown field`);
  const source = field(object, 's');
  const target = field(object, 'd');
  const readOnly = field(object, 'ro') ?? false;
  if (typeof source !== 'string' || typeof target !== 'string' || typeof readOnly !== 'boolean') throw bad(`mount ${index} has a missing or mistyped field`);
  const share = SHARE_SOURCE.exec(source);
  const file = FILE_SOURCE.exec(source);
  const number = Number(share?.[1] ?? file?.[1] ?? 'x');
  if (!Number.isInteger(number) || number >= MAX_MOUNTS || String(number) !== (share?.[1] ?? file?.[1])) throw bad(`mount ${index} has an invalid source`);
  if (file?.[2] !== undefined) {
    const problem = nameProblem(file[2]);
    if (problem !== undefined) throw bad(`mount ${index}: ${problem}`);
  }
  const problem = targetProblem(target);
  if (problem !== undefined) throw bad(`mount ${index}: ${problem}`);
  return { source, target, readOnly };
}

/** Parses and validates EBP_FILES; throws USAGE naming the problem. */
export function parseFilesSpec(text: string): FilesSpec {
  if (Buffer.byteLength(text) > MAX_SPEC_BYTES) throw bad('longer than 16 KiB');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('not an object');
  const object = value as Record<string, unknown>;
  const token = field(object, 't');
  const list = field(object, 'm');
  if (typeof token !== 'string' || !TOKEN.test(token)) throw bad('no valid token');
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_MOUNTS) throw bad(`between 1 and ${MAX_MOUNTS} mounts are allowed`);
  const mounts = list.map(parseMount);
  for (let i = 0; i < mounts.length; i += 1) {
    for (let j = i + 1; j < mounts.length; j += 1) {
      const a = mounts[i];
      const b = mounts[j];
      if (a === undefined || b === undefined) continue;
      if (a.source === b.source) throw bad(`two mounts of ${a.source}`);
      const aNumber = a.source.split('/')[1];
      if (a.source[0] === b.source[0] && aNumber === b.source.split('/')[1]) throw bad(`two mounts numbered ${a.source[0] ?? ''}/${aNumber ?? ''}`);
      if (overlaps(a.target, b.target)) throw bad(`the targets "${a.target}" and "${b.target}" overlap`);
    }
  }
  return { token, mounts };
}

export function encodeFilesSpec(spec: FilesSpec): string {
  return JSON.stringify({ t: spec.token, m: spec.mounts.map((mount) => ({ s: mount.source, d: mount.target, ro: mount.readOnly })) });
}

/** A fresh token: 24 characters of [a-z0-9]. */
export function newToken(random: (size: number) => Buffer): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return [...random(24)].map((byte) => alphabet[byte % alphabet.length] ?? 'a').join('');
}

/** The `ebp:files TOKEN` command, or undefined when `command` is not one. */
export function filesChannelToken(command: string): string | undefined {
  const match = /^ebp:files ([a-z0-9]{16,32})$/.exec(command);
  return match?.[1];
}
