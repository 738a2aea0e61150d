// A Unix socket client on libuv's own pipe handle (Node's pipe_wrap binding), without node:net.
//
// Why: a warm `ebp run` is a fresh Node process that sends one request to the local daemon and
// waits for the exit status. With node:net, loading the module and its streams and making the
// first Socket is 3 to 4 ms of cold code, more than the launch itself on the daemon's side; the
// handle underneath does the same in a fifth of a millisecond. Only the early launch
// (cli/early-run.ts) uses this, and hands the handle to a real net.Socket (toSocket) the moment
// it meets anything but the plain case.
//
// The binding is internal: it is used only on the Node release line it was checked on (20), every
// piece is checked before use, and without it (another Node, or --pending-deprecation, under
// which process.binding() warns) connectRawPipe() returns undefined and the caller takes the
// usual way.
import type { Socket } from 'node:net';

interface Request {
  oncomplete?: (status: number) => void;
  handle?: PipeHandle;
  async?: boolean;
}

interface PipeHandle {
  connect(request: Request, path: string): number;
  readStart(): number;
  readStop(): number;
  writeBuffer(request: Request, data: Buffer): number;
  close(callback?: () => void): void;
  onread: (buffer: ArrayBuffer | undefined) => void;
}

interface Bindings {
  readonly Pipe: new (type: number) => PipeHandle;
  readonly PipeConnectWrap: new () => Request;
  readonly WriteWrap: new () => Request;
  readonly socketType: number;
  /** stream_wrap's shared state: a read's byte count (or error) and offset are left there. */
  readonly state: Int32Array;
  readonly readBytesOrError: number;
  readonly arrayBufferOffset: number;
  readonly lastWriteWasAsync: number;
}

/** libuv's end of file. */
export const UV_EOF = -4095;

function pendingDeprecation(): boolean {
  return process.execArgv.includes('--pending-deprecation') ||
    /(^|\s)--pending-deprecation(\s|=|$)/.test(process.env['NODE_OPTIONS'] ?? '') ||
    process.env['NODE_PENDING_DEPRECATION'] === '1';
}

/** The Node release line the binding's shape and behaviour were checked on (tests included). */
const CHECKED_NODE_MAJOR = 20;

function bindings(): Bindings | undefined {
  if (Number(process.versions.node.split('.')[0]) !== CHECKED_NODE_MAJOR || pendingDeprecation()) return undefined;
  try {
    const binding = (process as unknown as { binding: (name: string) => Record<string, unknown> }).binding;
    const pipeWrap = binding('pipe_wrap');
    const streamWrap = binding('stream_wrap');
    const { Pipe, PipeConnectWrap, constants } = pipeWrap;
    const { WriteWrap, streamBaseState, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync } = streamWrap;
    const socketType = (constants as { SOCKET?: unknown } | undefined)?.SOCKET;
    if (typeof Pipe !== 'function' || typeof PipeConnectWrap !== 'function' || typeof WriteWrap !== 'function') return undefined;
    if (!(streamBaseState instanceof Int32Array) || typeof socketType !== 'number') return undefined;
    if (typeof kReadBytesOrError !== 'number' || typeof kArrayBufferOffset !== 'number' || typeof kLastWriteWasAsync !== 'number') return undefined;
    const prototype = (Pipe as { prototype: Record<string, unknown> }).prototype;
    if (!['connect', 'readStart', 'readStop', 'writeBuffer', 'close'].every((name) => typeof prototype[name] === 'function')) return undefined;
    return {
      Pipe: Pipe as Bindings['Pipe'],
      PipeConnectWrap: PipeConnectWrap as Bindings['PipeConnectWrap'],
      WriteWrap: WriteWrap as Bindings['WriteWrap'],
      socketType,
      state: streamBaseState,
      readBytesOrError: kReadBytesOrError,
      arrayBufferOffset: kArrayBufferOffset,
      lastWriteWasAsync: kLastWriteWasAsync,
    };
  } catch {
    return undefined;
  }
}

export interface RawPipe {
  /** Writes `data`; false when the write failed (the other end is gone). */
  write(data: Buffer): boolean;
  /** Reads: each chunk as it comes, then the end (UV_EOF, or another libuv error) once. */
  read(onData: (chunk: Buffer) => void, onEnd: (status: number) => void): void;
  /** Stops reading here and gives the handle to a net.Socket (which reads on from where this stopped). */
  toSocket(): Socket;
  close(): void;
}

/**
 * Connects to the Unix socket at `path`; `onConnect` gets 0, or libuv's error (a negative errno:
 * -ENOENT, -ECONNREFUSED...). Undefined when the binding is not there as expected.
 */
export function connectRawPipe(path: string, onConnect: (status: number) => void): RawPipe | undefined {
  const uv = bindings();
  if (uv === undefined) return undefined;
  const handle = new uv.Pipe(uv.socketType);
  const connecting = new uv.PipeConnectWrap();
  connecting.oncomplete = (status) => { onConnect(status); };
  const started = handle.connect(connecting, path);
  // Writes in flight, referenced here until done as net.Socket references its own (a unix socket
  // takes a small write at once; a full one queues it, and its request must outlive this call).
  const writes = new Set<Request>();
  let closed = false;
  const pipe: RawPipe = {
    write(data) {
      const request = new uv.WriteWrap();
      request.handle = handle;
      request.async = false;
      request.oncomplete = () => { writes.delete(request); };
      if (handle.writeBuffer(request, data) !== 0) return false;
      if (uv.state[uv.lastWriteWasAsync] !== 0) writes.add(request);
      return true;
    },
    read(onData, onEnd) {
      let ended = false;
      handle.onread = (buffer) => {
        const count = uv.state[uv.readBytesOrError] ?? UV_EOF;
        if (count > 0 && buffer !== undefined) {
          onData(Buffer.from(buffer, uv.state[uv.arrayBufferOffset] ?? 0, count));
        } else if (count < 0 && !ended) {
          ended = true;
          handle.readStop();
          onEnd(count);
        }
      };
      const error = handle.readStart();
      if (error !== 0) {
        ended = true;
        onEnd(error);
      }
    },
    toSocket() {
      handle.readStop();
      // (Node insists on a function here; the Socket sets its own.)
      handle.onread = () => undefined;
      const { Socket: NetSocket } = process.getBuiltinModule('node:net');
      // `handle` is how Node itself makes a Socket of a handle it has (child_process, cluster).
      return new NetSocket({ handle, readable: true, writable: true } as ConstructorParameters<typeof NetSocket>[0]);
    },
    close() {
      if (closed) return;
      closed = true;
      handle.close();
    },
  };
  if (started !== 0) {
    // Refused before it began: reported like a failed connection, a turn later.
    setImmediate(() => { onConnect(started); });
  }
  return pipe;
}
