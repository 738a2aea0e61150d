// DNS message codec for Multicast DNS (RFC 1035 wire format with the RFC 6762 changes: the top bit
// of a question's class is the "unicast response" (QU) bit, the top bit of a record's class is the
// "cache flush" bit).
//
// Our own codec rather than a general-purpose one because mDNS needs two things that general DNS
// libraries blur: names are kept as arrays of labels (a DNS-SD instance label may contain dots and
// spaces, "Alice's laptop (2)"), and everything received is hostile, so decoding enforces hard
// limits everywhere (packet size, records per packet, label and name lengths, pointer jumps that
// may only go backwards, so compression loops are impossible) and reports any breach as a
// WireError that the receive path counts and drops.

/** Labels of a domain name, in order, without the empty root label. */
export type Name = readonly string[];

export const TYPE = { A: 1, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, NSEC: 47, ANY: 255 } as const;
export const CLASS_IN = 1;
export const CLASS_ANY = 255;

/** Header flag bits. */
export const FLAG_RESPONSE = 0x8000;
export const FLAG_AUTHORITATIVE = 0x0400;
export const FLAG_TRUNCATED = 0x0200;

export const LIMITS = {
  /** Largest datagram we decode (RFC 6762 §17: up to 9000 bytes on jumbo-frame links). */
  maxPacketBytes: 9000,
  /** Questions plus records of all sections. */
  maxEntries: 256,
  maxLabelBytes: 63,
  /** Wire length of a name, including length octets and the final zero (RFC 1035 §2.3.4). */
  maxNameBytes: 255,
  /** Compression pointers followed while reading one name. */
  maxPointerJumps: 32,
  /** Types listed by one NSEC record we keep. */
  maxNsecTypes: 64,
} as const;

export class WireError extends Error {
  override readonly name = 'WireError';
}

export interface Question {
  readonly name: Name;
  readonly type: number;
  /** Class without the QU bit. */
  readonly cls: number;
  /** RFC 6762 §5.4: the querier asks for a unicast response. */
  readonly qu: boolean;
}

export type RData =
  | { readonly kind: 'A'; readonly address: string }
  | { readonly kind: 'AAAA'; readonly address: string }
  | { readonly kind: 'PTR'; readonly target: Name }
  | { readonly kind: 'SRV'; readonly priority: number; readonly weight: number; readonly port: number; readonly target: Name }
  | { readonly kind: 'TXT'; readonly strings: readonly Buffer[] }
  | { readonly kind: 'NSEC'; readonly next: Name; readonly types: readonly number[] }
  | { readonly kind: 'raw'; readonly bytes: Buffer };

export interface ResourceRecord {
  readonly name: Name;
  readonly type: number;
  /** Class without the cache-flush bit. */
  readonly cls: number;
  /** RFC 6762 §10.2 cache-flush bit. */
  readonly flush: boolean;
  /** Seconds. */
  readonly ttl: number;
  readonly data: RData;
}

export interface Message {
  readonly id: number;
  readonly flags: number;
  readonly questions: readonly Question[];
  readonly answers: readonly ResourceRecord[];
  readonly authorities: readonly ResourceRecord[];
  readonly additionals: readonly ResourceRecord[];
}

export function isResponse(message: Message): boolean {
  return (message.flags & FLAG_RESPONSE) !== 0;
}

export function opcode(message: Message): number {
  return (message.flags >> 11) & 0xf;
}

export function rcode(message: Message): number {
  return message.flags & 0xf;
}

// ---------------------------------------------------------------------------------------------
// Addresses

export function formatIpv4(bytes: Buffer, offset = 0): string {
  return `${bytes[offset] ?? 0}.${bytes[offset + 1] ?? 0}.${bytes[offset + 2] ?? 0}.${bytes[offset + 3] ?? 0}`;
}

export function parseIpv4(text: string): Buffer | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i += 1) {
    const part = parts[i] ?? '';
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    out[i] = value;
  }
  return out;
}

/** RFC 5952 text form: lower case, longest run of two or more zero groups as "::". */
export function formatIpv6(bytes: Buffer, offset = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i += 1) groups.push(bytes.readUInt16BE(offset + i * 2));
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestLength < 2) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLength).join(':');
  return `${head}::${tail}`;
}

/** Parses an IPv6 address (an optional "%scope" suffix is ignored). */
export function parseIpv6(text: string): Buffer | undefined {
  const bare = text.split('%')[0] ?? '';
  if (bare.length === 0 || bare.length > 45) return undefined;
  const halves = bare.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const group of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
      out.push(parseInt(group, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0] ?? '');
  const tail = halves.length === 2 ? parseGroups(halves[1] ?? '') : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(group, i * 2));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

class Reader {
  private readonly entriesSeen = { count: 0 };

  constructor(readonly buf: Buffer) {}

  u8(offset: number): number {
    const value = this.buf[offset];
    if (value === undefined) throw new WireError('truncated packet');
    return value;
  }

  u16(offset: number): number {
    if (offset + 2 > this.buf.length) throw new WireError('truncated packet');
    return this.buf.readUInt16BE(offset);
  }

  u32(offset: number): number {
    if (offset + 4 > this.buf.length) throw new WireError('truncated packet');
    return this.buf.readUInt32BE(offset);
  }

  /** Reads a possibly compressed name at offset; returns it and the offset just after it. */
  name(start: number, end = this.buf.length): [Name, number] {
    const labels: string[] = [];
    let offset = start;
    let after = -1;
    let wireLength = 1;
    let jumps = 0;
    // Pointers may only go to offsets before the earliest position read so far: no loops possible.
    let floor = start;
    for (;;) {
      if (offset >= end && after < 0) throw new WireError('name runs past its record');
      const length = this.u8(offset);
      if (length === 0) {
        if (after < 0) after = offset + 1;
        break;
      }
      const kind = length & 0xc0;
      if (kind === 0xc0) {
        const pointer = this.u16(offset) & 0x3fff;
        if (after < 0) after = offset + 2;
        jumps += 1;
        if (jumps > LIMITS.maxPointerJumps) throw new WireError('too many compression pointers');
        if (pointer >= floor) throw new WireError('compression pointer does not point backwards');
        floor = pointer;
        offset = pointer;
        continue;
      }
      if (kind !== 0) throw new WireError('unsupported label type');
      if (offset + 1 + length > this.buf.length || (after < 0 && offset + 1 + length > end)) {
        throw new WireError('label runs past the packet');
      }
      wireLength += length + 1;
      if (wireLength > LIMITS.maxNameBytes) throw new WireError('name longer than 255 bytes');
      labels.push(this.buf.toString('utf8', offset + 1, offset + 1 + length));
      offset += 1 + length;
    }
    if (after > end) throw new WireError('name runs past its record');
    return [labels, after];
  }

  countEntry(): void {
    this.entriesSeen.count += 1;
    if (this.entriesSeen.count > LIMITS.maxEntries) throw new WireError('too many records');
  }
}

function decodeRData(reader: Reader, type: number, start: number, length: number): RData {
  const end = start + length;
  const buf = reader.buf;
  switch (type) {
    case TYPE.A:
      if (length !== 4) throw new WireError('A record of wrong length');
      return { kind: 'A', address: formatIpv4(buf, start) };
    case TYPE.AAAA:
      if (length !== 16) throw new WireError('AAAA record of wrong length');
      return { kind: 'AAAA', address: formatIpv6(buf, start) };
    case TYPE.PTR: {
      const [target, after] = reader.name(start, end);
      if (after !== end) throw new WireError('PTR record with trailing bytes');
      return { kind: 'PTR', target };
    }
    case TYPE.SRV: {
      if (length < 7) throw new WireError('SRV record too short');
      const priority = reader.u16(start);
      const weight = reader.u16(start + 2);
      const port = reader.u16(start + 4);
      const [target, after] = reader.name(start + 6, end);
      if (after !== end) throw new WireError('SRV record with trailing bytes');
      return { kind: 'SRV', priority, weight, port, target };
    }
    case TYPE.TXT: {
      const strings: Buffer[] = [];
      let offset = start;
      while (offset < end) {
        const size = reader.u8(offset);
        if (offset + 1 + size > end) throw new WireError('TXT string runs past its record');
        strings.push(Buffer.from(buf.subarray(offset + 1, offset + 1 + size)));
        offset += 1 + size;
      }
      return { kind: 'TXT', strings };
    }
    case TYPE.NSEC: {
      const [next, after] = reader.name(start, end);
      const types: number[] = [];
      let offset = after;
      while (offset < end) {
        const window = reader.u8(offset);
        const size = reader.u8(offset + 1);
        if (size < 1 || size > 32 || offset + 2 + size > end) throw new WireError('bad NSEC bitmap');
        for (let i = 0; i < size; i += 1) {
          const octet = reader.u8(offset + 2 + i);
          for (let bit = 0; bit < 8; bit += 1) {
            if ((octet & (0x80 >> bit)) !== 0 && types.length < LIMITS.maxNsecTypes) types.push(window * 256 + i * 8 + bit);
          }
        }
        offset += 2 + size;
      }
      return { kind: 'NSEC', next, types };
    }
    default:
      return { kind: 'raw', bytes: Buffer.from(buf.subarray(start, end)) };
  }
}

/** Decodes one DNS message. Throws WireError (only) on anything malformed or over a limit. */
export function decodeMessage(buf: Buffer): Message {
  if (buf.length > LIMITS.maxPacketBytes) throw new WireError('packet too large');
  if (buf.length < 12) throw new WireError('packet shorter than a DNS header');
  const reader = new Reader(buf);
  const id = reader.u16(0);
  const flags = reader.u16(2);
  const counts = [reader.u16(4), reader.u16(6), reader.u16(8), reader.u16(10)] as const;
  if (counts[0] + counts[1] + counts[2] + counts[3] > LIMITS.maxEntries) throw new WireError('too many records');
  let offset = 12;
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]; i += 1) {
    reader.countEntry();
    const [name, after] = reader.name(offset);
    const type = reader.u16(after);
    const klass = reader.u16(after + 2);
    questions.push({ name, type, cls: klass & 0x7fff, qu: (klass & 0x8000) !== 0 });
    offset = after + 4;
  }
  const sections: ResourceRecord[][] = [[], [], []];
  for (let s = 0; s < 3; s += 1) {
    const section = sections[s] ?? [];
    const count = counts[(s + 1) as 1 | 2 | 3];
    for (let i = 0; i < count; i += 1) {
      reader.countEntry();
      const [name, after] = reader.name(offset);
      const type = reader.u16(after);
      const klass = reader.u16(after + 2);
      const ttl = reader.u32(after + 4);
      const length = reader.u16(after + 8);
      const start = after + 10;
      if (start + length > buf.length) throw new WireError('record data runs past the packet');
      const data = decodeRData(reader, type, start, length);
      section.push({ name, type, cls: klass & 0x7fff, flush: (klass & 0x8000) !== 0, ttl, data });
      offset = start + length;
    }
  }
  return {
    id,
    flags,
    questions,
    answers: sections[0] ?? [],
    authorities: sections[1] ?? [],
    additionals: sections[2] ?? [],
  };
}

// ---------------------------------------------------------------------------------------------
// Encoding

class Writer {
  private buf = Buffer.alloc(512);
  length = 0;
  /** Exact-case name suffix → offset, for compression. */
  private readonly suffixes = new Map<string, number>();

  private ensure(extra: number): void {
    if (this.length + extra > LIMITS.maxPacketBytes) throw new WireError('message larger than 9000 bytes');
    if (this.length + extra <= this.buf.length) return;
    const bigger = Buffer.alloc(Math.min(LIMITS.maxPacketBytes, Math.max(this.buf.length * 2, this.length + extra)));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }

  u8(value: number): void {
    this.ensure(1);
    this.buf.writeUInt8(value, this.length);
    this.length += 1;
  }

  u16(value: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(value, this.length);
    this.length += 2;
  }

  u32(value: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(value >>> 0, this.length);
    this.length += 4;
  }

  bytes(data: Buffer): void {
    this.ensure(data.length);
    data.copy(this.buf, this.length);
    this.length += data.length;
  }

  setU16(offset: number, value: number): void {
    this.buf.writeUInt16BE(value, offset);
  }

  name(name: Name, compress: boolean): void {
    checkName(name);
    for (let i = 0; i < name.length; i += 1) {
      const key = JSON.stringify(name.slice(i));
      const known = compress ? this.suffixes.get(key) : undefined;
      if (known !== undefined) {
        this.u16(0xc000 | known);
        return;
      }
      if (compress && this.length < 0x3fff) this.suffixes.set(key, this.length);
      const label = Buffer.from(name[i] ?? '', 'utf8');
      this.u8(label.length);
      this.bytes(label);
    }
    this.u8(0);
  }

  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }
}

/** Throws WireError when a name cannot be put on the wire (empty label, label > 63, name > 255). */
export function checkName(name: Name): void {
  let total = 1;
  for (const label of name) {
    const bytes = Buffer.byteLength(label, 'utf8');
    if (bytes === 0) throw new WireError('empty label');
    if (bytes > LIMITS.maxLabelBytes) throw new WireError('label longer than 63 bytes');
    total += bytes + 1;
  }
  if (total > LIMITS.maxNameBytes) throw new WireError('name longer than 255 bytes');
}

export function nameWireLength(name: Name): number {
  return name.reduce((sum, label) => sum + Buffer.byteLength(label, 'utf8') + 1, 1);
}

function writeRData(writer: Writer, data: RData, compress: boolean): void {
  switch (data.kind) {
    case 'A': {
      const bytes = parseIpv4(data.address);
      if (bytes === undefined) throw new WireError(`not an IPv4 address: ${data.address}`);
      writer.bytes(bytes);
      return;
    }
    case 'AAAA': {
      const bytes = parseIpv6(data.address);
      if (bytes === undefined) throw new WireError(`not an IPv6 address: ${data.address}`);
      writer.bytes(bytes);
      return;
    }
    case 'PTR':
      writer.name(data.target, compress);
      return;
    case 'SRV':
      writer.u16(data.priority);
      writer.u16(data.weight);
      writer.u16(data.port);
      writer.name(data.target, compress);
      return;
    case 'TXT':
      // RFC 6763 §6.1: an empty TXT record is a single zero-length string.
      if (data.strings.length === 0) {
        writer.u8(0);
        return;
      }
      for (const text of data.strings) {
        if (text.length > 255) throw new WireError('TXT string longer than 255 bytes');
        writer.u8(text.length);
        writer.bytes(text);
      }
      return;
    case 'NSEC': {
      writer.name(data.next, false);
      const windows = new Map<number, number[]>();
      for (const type of data.types) {
        const window = type >> 8;
        const bits = windows.get(window) ?? new Array<number>(32).fill(0);
        const low = type & 0xff;
        bits[low >> 3] = (bits[low >> 3] ?? 0) | (0x80 >> (low & 7));
        windows.set(window, bits);
      }
      for (const window of [...windows.keys()].sort((a, b) => a - b)) {
        const bits = windows.get(window) ?? [];
        let size = 32;
        while (size > 1 && bits[size - 1] === 0) size -= 1;
        writer.u8(window);
        writer.u8(size);
        writer.bytes(Buffer.from(bits.slice(0, size)));
      }
      return;
    }
    case 'raw':
      writer.bytes(data.bytes);
      return;
  }
}

function writeRecord(writer: Writer, record: ResourceRecord): void {
  writer.name(record.name, true);
  writer.u16(record.type);
  writer.u16((record.cls & 0x7fff) | (record.flush ? 0x8000 : 0));
  writer.u32(record.ttl);
  const lengthAt = writer.length;
  writer.u16(0);
  writeRData(writer, record.data, record.data.kind === 'PTR' || record.data.kind === 'SRV');
  const size = writer.length - lengthAt - 2;
  if (size > 0xffff) throw new WireError('record data too long');
  writer.setU16(lengthAt, size);
}

/** Encodes a message with name compression. Throws WireError if it cannot be represented. */
export function encodeMessage(message: Message): Buffer {
  const writer = new Writer();
  writer.u16(message.id);
  writer.u16(message.flags);
  writer.u16(message.questions.length);
  writer.u16(message.answers.length);
  writer.u16(message.authorities.length);
  writer.u16(message.additionals.length);
  for (const question of message.questions) {
    writer.name(question.name, true);
    writer.u16(question.type);
    writer.u16((question.cls & 0x7fff) | (question.qu ? 0x8000 : 0));
  }
  for (const record of [...message.answers, ...message.authorities, ...message.additionals]) writeRecord(writer, record);
  return writer.result();
}

/** The record data as bytes with uncompressed names: what RFC 6762 §8.2 compares when probing. */
export function rdataBytes(data: RData): Buffer {
  const writer = new Writer();
  writeRData(writer, data, false);
  return writer.result();
}

/** Conservative size of a record on the wire (no compression), for splitting packets. */
export function recordWireLength(record: ResourceRecord): number {
  return nameWireLength(record.name) + 10 + rdataBytes(record.data).length;
}
