// Waiting for a writable stream's output to leave this process.
import type { Writable } from 'node:stream';

/**
 * Resolves once everything written to `stream` so far has gone out (or failed: the reader went
 * away). A write's callback runs only after every earlier write on that stream is done, so an
 * empty write marks the point; nothing pending, or a stream that no longer writes: at once.
 */
export async function writesDone(stream: Writable): Promise<void> {
  if (!stream.writable || stream.writableLength === 0) return;
  await new Promise<void>((resolve) => {
    stream.write(Buffer.alloc(0), () => { resolve(); });
  });
}
