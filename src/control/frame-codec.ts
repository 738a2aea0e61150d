// The frames of a launch relayed through the local daemon's control socket: a type byte, a
// 32-bit length, the payload. Nothing else here: the early launch (cli/early-run.ts) reads
// them before any stream code is loaded.

export const Frame = {
  stdin: 0,
  stdout: 1,
  stderr: 2,
  stdinEnd: 3,
  resize: 4,
  signal: 5,
  exit: 6,
} as const;
export type FrameType = (typeof Frame)[keyof typeof Frame];

const MAX_FRAME = 1024 * 1024;

export function encodeFrame(type: FrameType, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.allocUnsafe(5);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

/** Incremental decoder: feed chunks, get whole frames. Throws on an oversized or unknown frame. */
export class FrameDecoder {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { type: FrameType; payload: Buffer }[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: { type: FrameType; payload: Buffer }[] = [];
    while (this.#buffer.length >= 5) {
      const type = this.#buffer.readUInt8(0);
      const length = this.#buffer.readUInt32BE(1);
      if (type > Frame.exit || length > MAX_FRAME) throw new Error(`bad control frame (type ${type}, length ${length})`);
      if (this.#buffer.length < 5 + length) break;
      frames.push({ type: type as FrameType, payload: this.#buffer.subarray(5, 5 + length) });
      this.#buffer = this.#buffer.subarray(5 + length);
    }
    return frames;
  }
}
