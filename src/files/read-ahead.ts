// Read-ahead on open, between the session's two SFTP relays: the person's side (the CLI, in front
// of the jailed sftp-server) and the host's (the daemon, in front of the sandbox's sshfs).
//
// A small file read through sshfs costs a network round trip for its OPEN and another for the
// READ at offset 0 that follows.
// The person's side sees the handle come back from its own sftp-server, a few microseconds
// away: for a file opened for reading only, it reads the start of the file right then, and sends
// that answer ahead of the handle, as a packet of ebp's own (type READ_AHEAD) that the host's side
// keeps and never passes to sshfs. When sshfs then asks for offset 0 of that handle, the host's
// side answers from it; the request never crosses the network. A tar of many small files makes
// one round trip fewer per file.
//
// Version 2 (the host's hello says which it takes): the person's side no longer holds the handle
// back for its own read. It sends a small packet (READ_AHEAD_COMING) and the handle at once, and
// the answer (READ_AHEAD_AFTER) when sftp-server gives it, so that the local read overlaps the
// handle's way to sshfs. The host's side holds a READ at offset 0 of such a handle until the
// answer (or word that there is none) comes. Any change drops the answers still coming too, and
// lets the READs held for them go to the person.
//
// What keeps this exact: an answer is used once, only for offset 0 of the handle it was read
// for, only within READ_AHEAD_FRESH_MS, and only when it answers the whole request (the whole
// file, or at least the bytes asked for). Any request that changes anything (a write, an open
// for writing, setstat, remove, rename, mkdir, symlink, any extension) drops every answer kept.
//
// Both streams are parsed as SFTP packets; whatever does not parse (a length over MAX_PACKET)
// turns that direction into a plain pipe from there on. The host's side trusts nothing of the
// person's packets beyond their shape: at most MAX_KEPT answers, each under READ_AHEAD_BYTES.
import type { Readable, Writable } from 'node:stream';

/**
 * What the host's side writes on the files channel's stderr: the person's side may read ahead,
 * in either version. A person's side that knows only version 1 looks for the first line.
 */
export const READ_AHEAD_HELLO = 'ebp-files: read-ahead 1\nebp-files: read-ahead 2\n';
/** The versions of the read-ahead protocol, as the hello names them. */
export type ReadAheadVersion = 1 | 2;
/** The highest version a host's hello offers (lines `ebp-files: read-ahead N`), or undefined. */
export function readAheadVersion(said: string): ReadAheadVersion | undefined {
  const offered = [...said.matchAll(/ebp-files: read-ahead (\d+)\n/g)].map((match) => Number(match[1]));
  if (offered.length === 0) return undefined;
  return offered.some((version) => version >= 2) ? 2 : 1;
}
/** ebp's own packet types on the files channel (person → host), outside SFTP's numbers. */
const READ_AHEAD = 250;
/** Version 2: an answer for this handle is coming (sent before the handle). */
const READ_AHEAD_COMING = 251;
/** Version 2: the answer that was announced; an empty one says there is none. */
const READ_AHEAD_AFTER = 252;
const READ_AHEAD_BYTES = 32 * 1024;
const READ_AHEAD_FRESH_MS = 1000;
const MAX_KEPT = 256;
/** sftp-server's own limit on a message, and some room. */
const MAX_PACKET = 256 * 1024 + 1024;
/** The ids the person's side gives its own reads: sshfs counts up from 1 and never gets here. */
const OWN_IDS = 0x80000000;

const SSH_FXP = { open: 3, close: 4, read: 5, write: 6, setstat: 9, fsetstat: 10, remove: 13, mkdir: 14, rmdir: 15, rename: 18, symlink: 20, status: 101, handle: 102, data: 103, extended: 200 } as const;
const CHANGES = new Set<number>([SSH_FXP.write, SSH_FXP.setstat, SSH_FXP.fsetstat, SSH_FXP.remove, SSH_FXP.mkdir, SSH_FXP.rmdir, SSH_FXP.rename, SSH_FXP.symlink, SSH_FXP.extended]);
const PFLAGS = { read: 0x01, write: 0x02, append: 0x04, creat: 0x08, trunc: 0x10 } as const;
const STATUS_EOF = 1;

/**
 * Cuts a byte stream at SFTP packet boundaries. A packet that `wanted` asks for (by its type and
 * id, the first 9 bytes) is handed over whole; every other passes on in the pieces it came in,
 * never gathered or copied (bulk reads and writes go through as they are). Once a length is not
 * one SFTP has, everything from there on passes as it is (`broken`).
 */
class Packets {
  #head = Buffer.alloc(0);
  /** Bytes of the current packet still to pass on as they come. */
  #passing = 0;
  /** The current packet's pieces, while gathering it whole. */
  #gathered: Buffer[] | undefined;
  #gathering = 0;
  /** Packets of this side's own, waiting for the end of the packet passing through. */
  #queued: Buffer[] = [];
  broken = false;

  /**
   * `out` writes to the stream this one feeds (the relay's write), also the packets of this
   * side's own, put in between the stream's packets, never inside one.
   */
  constructor(private readonly wanted: (type: number, id: number) => boolean, private readonly out: (bytes: Buffer) => void) {}

  /** Passes a whole packet on (one `wanted` handed over). */
  send(packet: Buffer): void {
    this.out(packet);
  }

  /** Puts a packet of this side's own into the stream, between two of its packets. */
  insert(packet: Buffer): void {
    if (this.broken || (this.#passing === 0 && this.#gathered === undefined && this.#head.length === 0)) this.out(packet);
    else this.#queued.push(packet);
  }

  #between(): void {
    const queued = this.#queued;
    this.#queued = [];
    for (const packet of queued) this.out(packet);
  }

  push(chunk: Buffer, whole: (packet: Buffer) => void): void {
    // What passes on goes out in as few pieces as the chunk allows: consecutive slices of it as
    // one (a packet's head and its data in one write, not two SSH packets).
    let run: { start: number; end: number } | undefined;
    const flush = (): void => {
      if (run !== undefined) this.out(chunk.subarray(run.start, run.end));
      run = undefined;
    };
    const pass = (start: number, end: number): void => {
      if (run !== undefined && run.end === start) {
        run.end = end;
        return;
      }
      flush();
      run = { start, end };
    };
    // Between two packets: only a packet of this side's own breaks the run.
    const between = (): void => {
      if (this.#queued.length === 0) return;
      flush();
      this.#between();
    };
    /** A packet's head is read: hand the packet over whole, or let it pass. */
    const headRead = (head: Buffer, inChunk: number | undefined, length: number): void => {
      const rest = 4 + length - head.length;
      // Packets too short to hold an id (SFTP's own have one, but for INIT) always pass.
      if (head.length >= 9 && this.wanted(head[4] ?? 0, head.readUInt32BE(5))) {
        if (rest === 0) {
          flush();
          whole(head);
          between();
        } else {
          this.#gathered = [head];
          this.#gathering = rest;
        }
        return;
      }
      if (inChunk === undefined) {
        flush();
        this.out(head);
      } else {
        pass(inChunk, inChunk + head.length);
      }
      this.#passing = rest;
      if (rest === 0) between();
    };
    let offset = 0;
    for (;;) {
      const left = chunk.length - offset;
      if (this.broken) {
        if (left > 0) pass(offset, chunk.length);
        flush();
        return;
      }
      if (this.#passing > 0) {
        if (left === 0) break;
        const take = Math.min(this.#passing, left);
        pass(offset, offset + take);
        this.#passing -= take;
        offset += take;
        if (this.#passing === 0) between();
        continue;
      }
      if (this.#gathered !== undefined) {
        if (left === 0) break;
        const take = Math.min(this.#gathering, left);
        this.#gathered.push(chunk.subarray(offset, offset + take));
        this.#gathering -= take;
        offset += take;
        if (this.#gathering === 0) {
          const packet = Buffer.concat(this.#gathered);
          this.#gathered = undefined;
          flush();
          whole(packet);
          between();
        }
        continue;
      }
      // The start of a packet: its length, then its type and id (or all of it, if shorter).
      if (this.#head.length === 0 && left >= 4) {
        const length = chunk.readUInt32BE(offset);
        if (length < 1 || length > MAX_PACKET) {
          this.broken = true;
          continue;
        }
        const headSize = Math.min(9, 4 + length);
        if (left >= headSize) {
          const at = offset;
          offset += headSize;
          headRead(chunk.subarray(at, at + headSize), at, length);
          continue;
        }
      }
      // A head cut between chunks: gathered here.
      const length = this.#head.length >= 4 ? this.#head.readUInt32BE(0) : undefined;
      if (length !== undefined && (length < 1 || length > MAX_PACKET)) {
        this.broken = true;
        flush();
        this.out(this.#head);
        this.#head = Buffer.alloc(0);
        continue;
      }
      const headSize = length === undefined ? 4 : Math.min(9, 4 + length);
      if (this.#head.length < headSize) {
        if (left === 0) break;
        const take = Math.min(headSize - this.#head.length, left);
        this.#head = Buffer.concat([this.#head, chunk.subarray(offset, offset + take)]);
        offset += take;
        continue;
      }
      if (length === undefined) continue;
      const head = this.#head;
      this.#head = Buffer.alloc(0);
      headRead(head, undefined, length);
    }
    flush();
    if (this.#passing === 0 && this.#gathered === undefined && this.#head.length === 0) this.#between();
  }
}

/** A packet's fields, read with bounds checks; undefined when it is too short. */
class Fields {
  #offset: number;
  constructor(private readonly packet: Buffer, offset = 5) {
    this.#offset = offset;
  }

  uint32(): number | undefined {
    if (this.#offset + 4 > this.packet.length) return undefined;
    const value = this.packet.readUInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }

  uint64(): bigint | undefined {
    if (this.#offset + 8 > this.packet.length) return undefined;
    const value = this.packet.readBigUInt64BE(this.#offset);
    this.#offset += 8;
    return value;
  }

  bytes(): Buffer | undefined {
    const length = this.uint32();
    if (length === undefined || this.#offset + length > this.packet.length) return undefined;
    const value = this.packet.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return value;
  }

  get offset(): number {
    return this.#offset;
  }
}

function typeOf(packet: Buffer): number {
  return packet.length > 4 ? packet[4] ?? 0 : 0;
}

function packet(type: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), ...parts]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

function sftpString(value: Buffer): Buffer {
  return Buffer.concat([uint32(value.length), value]);
}

/** Does an OPEN read only (nothing it could change)? */
function opensForReading(open: Buffer): boolean {
  const fields = new Fields(open);
  if (fields.uint32() === undefined || fields.bytes() === undefined) return false;
  const flags = fields.uint32();
  return flags !== undefined && (flags & PFLAGS.read) !== 0 && (flags & (PFLAGS.write | PFLAGS.append | PFLAGS.creat | PFLAGS.trunc)) === 0;
}

/**
 * One direction of a relay: bytes from `source` cut into packets (`wanted` ones handed to
 * `whole`, the rest passed on as they come) into `dest`, the source paused while `dest` is full.
 * Plain listeners, no stream in between: a relay moves bulk data too.
 */
function relay(source: Readable, dest: Writable, wanted: (type: number, id: number) => boolean, whole: (packet: Buffer) => void, sent?: () => void): Packets {
  let waiting = false;
  const cutter = new Packets(wanted, (bytes) => {
    sent?.();
    if (dest.write(bytes) || waiting) return;
    waiting = true;
    source.pause();
    dest.once('drain', () => {
      waiting = false;
      source.resume();
    });
  });
  source.on('data', (chunk: Buffer) => { cutter.push(chunk, whole); });
  source.once('end', () => { dest.end(); });
  return cutter;
}

/** The person's side of the files channel and the jailed sftp-server. */
export interface PersonEnds {
  /** The channel's stdout: the host's requests. */
  readonly fromHost: Readable;
  /** sftp-server's stdin. */
  readonly toServer: Writable;
  /** sftp-server's stdout. */
  readonly fromServer: Readable;
  /** The channel's stdin. */
  readonly toHost: Writable;
}

/**
 * The person's side: relays between the files channel and the jailed sftp-server. It reads ahead
 * once `enable()` is called: when the host's side has said it keeps the answers
 * (READ_AHEAD_HELLO); until then it only passes bytes.
 */
export function personReadAhead(ends: PersonEnds): { enable(version?: ReadAheadVersion): void } {
  /** Ids of the host's read-only OPENs, until their reply. */
  const opens = new Set<number>();
  /** This side's own reads, by id: the handle they read, and (version 1) its reply, held back meanwhile. */
  const reads = new Map<number, { handle: Buffer; handleReply: Buffer | undefined }>();
  let nextId = OWN_IDS;
  let version: ReadAheadVersion | undefined;
  /** Off for good once the host's requests look like anything but sshfs's. */
  let enabled = true;
  const inbound: Packets = relay(ends.fromHost, ends.toServer, (type, id) => {
    if (id >= OWN_IDS) enabled = false;
    return version !== undefined && enabled && type === SSH_FXP.open;
  }, (request) => {
    if (opensForReading(request)) opens.add(request.readUInt32BE(5));
    inbound.send(request);
  });
  const outbound: Packets = relay(ends.fromServer, ends.toHost, (type, id) => {
    if (type !== SSH_FXP.handle && opens.delete(id)) return false;
    return (type === SSH_FXP.handle && opens.has(id)) || reads.has(id);
  }, (reply) => {
    if (inbound.broken) enabled = false;
    const id = reply.readUInt32BE(5);
    const read = reads.get(id);
    if (read !== undefined) {
      reads.delete(id);
      // Data, or the end of an empty file: kept by the host's side. An error: only the handle.
      const type = typeOf(reply);
      const usable = type === SSH_FXP.data || (type === SSH_FXP.status && new Fields(reply, 9).uint32() === STATUS_EOF);
      if (read.handleReply === undefined) {
        // Version 2: the handle went on already; the host's side waits for this, or for word of none.
        outbound.send(packet(READ_AHEAD_AFTER, sftpString(read.handle), usable ? reply.subarray(4) : Buffer.alloc(0)));
        return;
      }
      if (usable) outbound.send(packet(READ_AHEAD, sftpString(read.handle), reply.subarray(4)));
      outbound.send(read.handleReply);
      return;
    }
    opens.delete(id);
    const fields = new Fields(reply);
    fields.uint32();
    const handle = fields.bytes();
    if (handle === undefined || !enabled) {
      outbound.send(reply);
      return;
    }
    // The read goes to sftp-server right behind the host's requests. Version 1: the handle waits
    // for it. Version 2: word that an answer is coming, then the handle at once.
    const own = nextId;
    nextId = nextId === 0xffffffff ? OWN_IDS : nextId + 1;
    if (version === 2) {
      outbound.send(packet(READ_AHEAD_COMING, sftpString(handle)));
      outbound.send(reply);
      reads.set(own, { handle, handleReply: undefined });
    } else {
      reads.set(own, { handle, handleReply: reply });
    }
    inbound.insert(packet(SSH_FXP.read, uint32(own), sftpString(handle), Buffer.alloc(8), uint32(READ_AHEAD_BYTES)));
  });
  return { enable: (offered = 1) => { version = offered; } };
}

interface Kept {
  /** The reply as sftp-server gave it, from its type on (its id is replaced when used). */
  readonly reply: Buffer;
  readonly at: number;
}

/** The host's side of sshfs's descriptor and the files channel. */
export interface HostEnds {
  readonly fromSshfs: Readable;
  readonly toSshfs: Writable;
  /** The channel's stdout: the person's replies (and read-ahead answers). */
  readonly fromPerson: Readable;
  /** The channel's stdin. */
  readonly toPerson: Writable;
}

/**
 * The host's side: relays between sshfs and the files channel, keeps the person's read-ahead
 * answers and answers READs from them. `sentToPerson` is called for every piece sent on.
 */
export function hostReadAhead(ends: HostEnds, options: { now?: () => number; sentToPerson?: () => void } = {}): void {
  const now = options.now ?? Date.now;
  const kept = new Map<string, Kept>();
  /** Version 2: handles whose answer is coming (since when), and the READ held for each. */
  const coming = new Map<string, number>();
  const held = new Map<string, { request: Buffer; timer: NodeJS.Timeout }>();
  /** A READ held for `key` goes on now: answered from what came, or to the person. */
  const release = (key: string): void => {
    const waiting = held.get(key);
    if (waiting === undefined) return;
    held.delete(key);
    clearTimeout(waiting.timer);
    readOrPass(waiting.request, 'between');
  };
  /** Anything may have changed: nothing kept or coming is used; held READs go to the person. */
  const forgetAll = (): void => {
    kept.clear();
    coming.clear();
    for (const key of [...held.keys()]) release(key);
  };
  const keep = (key: string, answer: Buffer): void => {
    const answerType = answer[0];
    if (answer.length < 5 || answer.length > READ_AHEAD_BYTES + 64) return;
    if (answerType !== SSH_FXP.data && answerType !== SSH_FXP.status) return;
    if (kept.size >= MAX_KEPT) kept.delete(kept.keys().next().value ?? '');
    kept.set(key, { reply: Buffer.from(answer), at: now() });
  };
  // ebp's own packets are kept (or dropped), never passed to sshfs.
  const fromPerson = relay(ends.fromPerson, ends.toSshfs, (type) => type === READ_AHEAD || type === READ_AHEAD_COMING || type === READ_AHEAD_AFTER, (own) => {
    const type = typeOf(own);
    const fields = new Fields(own, 5);
    const handle = fields.bytes();
    if (handle === undefined || handle.length > 256) return;
    const key = handle.toString('latin1');
    const answer = own.subarray(fields.offset);
    if (type === READ_AHEAD) {
      keep(key, answer);
    } else if (type === READ_AHEAD_COMING) {
      if (coming.size >= MAX_KEPT) {
        const oldest = coming.keys().next().value ?? '';
        coming.delete(oldest);
        release(oldest);
      }
      coming.set(key, now());
    } else if (coming.delete(key)) {
      // Announced and not dropped since (by a change): its answer, or none.
      if (answer.length > 0) keep(key, answer);
      release(key);
    }
  });
  const fromSshfs: Packets = relay(ends.fromSshfs, ends.toPerson, (type) => {
    if (type === SSH_FXP.read || type === SSH_FXP.close || type === SSH_FXP.open) return true;
    if (CHANGES.has(type)) forgetAll();
    return false;
  }, (request) => {
    const type = typeOf(request);
    if (type === SSH_FXP.read) {
      const handle = new Fields(request, 9).bytes();
      const key = handle?.toString('latin1');
      const at = key === undefined ? undefined : coming.get(key);
      if (key !== undefined && at !== undefined && !held.has(key) && now() - at <= READ_AHEAD_FRESH_MS) {
        // Its answer is on the way: wait for it (never past the time an answer is good for).
        const timer = setTimeout(() => {
          coming.delete(key);
          release(key);
        }, READ_AHEAD_FRESH_MS);
        timer.unref();
        held.set(key, { request, timer });
        return;
      }
      readOrPass(request, 'now');
      return;
    } else if (type === SSH_FXP.close) {
      const handle = new Fields(request, 9).bytes();
      if (handle !== undefined) {
        const key = handle.toString('latin1');
        coming.delete(key);
        release(key);
        kept.delete(key);
      }
    } else if (!opensForReading(request)) {
      forgetAll();
    }
    fromSshfs.send(request);
  }, options.sentToPerson);

  /**
   * A READ from sshfs: answered here from what was kept, or passed on to the person. `now`: from
   * sshfs's own stream, where it stands; `between`: held, so it goes between two of its packets.
   */
  function readOrPass(request: Buffer, when: 'now' | 'between'): void {
    const answer = answerRead(request);
    if (answer !== undefined) fromPerson.insert(answer);
    else if (when === 'now') fromSshfs.send(request);
    else fromSshfs.insert(request);
  }

  /** The reply to READ from what was kept for its handle, or undefined: ask the person. */
  function answerRead(request: Buffer): Buffer | undefined {
    const fields = new Fields(request);
    const id = fields.uint32();
    const handle = fields.bytes();
    const offset = fields.uint64();
    const length = fields.uint32();
    if (id === undefined || handle === undefined || offset === undefined || length === undefined) return undefined;
    const key = handle.toString('latin1');
    const entry = kept.get(key);
    if (entry === undefined) return undefined;
    kept.delete(key);
    if (offset !== 0n || now() - entry.at > READ_AHEAD_FRESH_MS) return undefined;
    const reply = Buffer.from(entry.reply);
    reply.writeUInt32BE(id, 1);
    if (reply[0] === SSH_FXP.status) return Buffer.concat([uint32(reply.length), reply]);
    const data = new Fields(reply, 5).bytes();
    if (data === undefined) return undefined;
    // All of the file (a short read), or at least what is asked for.
    if (data.length >= READ_AHEAD_BYTES && length > data.length) return undefined;
    const served = data.subarray(0, Math.min(length, data.length));
    return packet(SSH_FXP.data, uint32(id), sftpString(served));
  }

}
