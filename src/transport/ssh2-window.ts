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

/** Resumes the parked write of one stream when the window has room and the other has none parked. */
function resume(channel: ChannelInternals, which: 'stdout' | 'stderr'): void {
  if (channel.outgoing.window <= 0) return;
  if (which === 'stderr' && channel._chunkErr !== undefined && channel._chunk === undefined) {
    const chunk = channel._chunkErr;
    const callback = channel._chunkcbErr ?? (() => undefined);
    channel._waitWindow = false;
    channel.stderr._write(chunk, null, callback);
  } else if (which === 'stdout' && channel._chunk !== undefined && channel._chunkErr === undefined) {
    const chunk = channel._chunk;
    const callback = channel._chunkcb ?? (() => undefined);
    channel._waitWindow = false;
    channel._write(chunk, null, callback);
  }
}

/**
 * Repairs the flow control of this channel's class (once per class). Returns false, and changes
 * nothing, when ssh2's internals are not the ones this repair knows.
 */
export function repairWindowHandling(serverChannel: ServerChannel): boolean {
  const channel = serverChannel as unknown as Partial<ChannelInternals>;
  if (!hasShape(channel)) return false;
  const channelProto = Object.getPrototypeOf(channel) as { _write: WriteFn };
  const stderrProto = Object.getPrototypeOf(channel.stderr) as { _write: WriteFn };
  if (patched.has(channelProto) && patched.has(stderrProto)) return true;
  if (!patched.has(channelProto)) {
    const write = channelProto._write;
    channelProto._write = function (this: ChannelInternals, data, encoding, callback) {
      this._chunk = undefined;
      this._chunkcb = undefined;
      write.call(this, data, encoding, (error) => {
        callback(error);
        if (this._chunk === undefined) resume(this, 'stderr');
      });
    };
    patched.add(channelProto);
  }
  if (!patched.has(stderrProto)) {
    const write = stderrProto._write;
    stderrProto._write = function (this: ChannelInternals['stderr'], data, encoding, callback) {
      const owner = this._channel;
      owner._chunkErr = undefined;
      owner._chunkcbErr = undefined;
      write.call(this, data, encoding, (error) => {
        callback(error);
        if (owner._chunkErr === undefined) resume(owner, 'stdout');
      });
    };
    patched.add(stderrProto);
  }
  return true;
}
