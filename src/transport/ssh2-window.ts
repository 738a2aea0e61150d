// A repair of ssh2's (1.17) outgoing flow control on server session channels, where stdout and
// stderr share the client's window.
//
// A write that finds the window exhausted is parked in the channel (`_chunk`/`_chunkcb` for
// stdout, `_chunkErr`/`_chunkcbErr` for stderr) and resumed by the next WINDOW_ADJUST, which
// resumes the stdout one if `_chunk` is set and else the stderr one. Two faults follow:
// - a resumed write that completes leaves `_chunk`/`_chunkcb` set, so a later adjust meant for a
//   parked stderr write sends that old stdout chunk again (duplicated bytes, a callback called
//   twice) and the stderr bytes never go: the person's output is corrupted, or, when the exit
//   status waits for the output, the launch never ends;
// - with both parked, only stdout is resumed; stderr waits for another adjust that may never
//   come.
// The repair: each write forgets what was parked for its stream as it starts (a resumed write
// gets it as its arguments), and a write that completes resumes the other stream's parked write
// while the window has room.
import type { ServerChannel } from 'ssh2';
import type { Writable } from 'node:stream';

type WriteFn = (data: Buffer, encoding: BufferEncoding | null, callback: (error?: Error | null) => void) => void;

/** ssh2's private fields this repair touches (checked before patching). */
interface ChannelInternals {
  _write: WriteFn;
  _waitWindow: boolean;
  _chunk: Buffer | undefined;
  _chunkcb: (() => void) | undefined;
  _chunkErr: Buffer | undefined;
  _chunkcbErr: (() => void) | undefined;
  outgoing: { window: number };
  stderr: Writable & { _write: WriteFn; _channel: ChannelInternals };
}

const patched = new WeakSet<object>();

function hasShape(channel: Partial<ChannelInternals>): channel is ChannelInternals {
  return typeof channel._write === 'function' && typeof channel.stderr?._write === 'function'
    && '_chunk' in channel && '_chunkcb' in channel && '_chunkErr' in channel && '_chunkcbErr' in channel
    && typeof channel._waitWindow === 'boolean' && typeof channel.outgoing?.window === 'number';
}

type Stream = 'stdout' | 'stderr';

/** Where ssh2 parks each stream's write, and the other stream. */
const PARKED = {
  stdout: { chunk: '_chunk', callback: '_chunkcb', other: 'stderr' },
  stderr: { chunk: '_chunkErr', callback: '_chunkcbErr', other: 'stdout' },
} as const satisfies Record<Stream, { chunk: keyof ChannelInternals; callback: keyof ChannelInternals; other: Stream }>;

/** Resumes the parked write of one stream when the window has room and the other has none parked. */
function resume(channel: ChannelInternals, which: Stream): void {
  const { chunk, callback, other } = PARKED[which];
  const parked = channel[chunk];
  if (channel.outgoing.window <= 0 || parked === undefined || channel[PARKED[other].chunk] !== undefined) return;
  const done = channel[callback] ?? (() => undefined);
  channel._waitWindow = false;
  (which === 'stdout' ? channel : channel.stderr)._write(parked, null, done);
}

/**
 * Wraps one stream class's _write: it forgets what was parked for that stream as it starts, and
 * once done resumes the other stream's parked write.
 */
function repairWrite(proto: { _write: WriteFn }, which: Stream, channelOf: (self: unknown) => ChannelInternals): void {
  if (patched.has(proto)) return;
  const write = proto._write;
  const { chunk, callback: parkedCallback, other } = PARKED[which];
  proto._write = function (this: unknown, data, encoding, callback) {
    const channel = channelOf(this);
    channel[chunk] = undefined;
    channel[parkedCallback] = undefined;
    write.call(this, data, encoding, (error) => {
      callback(error);
      if (channel[chunk] === undefined) resume(channel, other);
    });
  };
  patched.add(proto);
}

/**
 * Repairs the flow control of this channel's class (once per class). Returns false, and changes
 * nothing, when ssh2's internals are not the ones this repair knows.
 */
export function repairWindowHandling(serverChannel: ServerChannel): boolean {
  const channel = serverChannel as unknown as Partial<ChannelInternals>;
  if (!hasShape(channel)) return false;
  repairWrite(Object.getPrototypeOf(channel) as { _write: WriteFn }, 'stdout', (self) => self as ChannelInternals);
  repairWrite(Object.getPrototypeOf(channel.stderr) as { _write: WriteFn }, 'stderr', (self) => (self as ChannelInternals['stderr'])._channel);
  return true;
}
