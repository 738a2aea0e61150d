// A launch relayed through the local daemon's control socket, in frames (frame-codec.ts).
// Stdin, stdout and stderr stay separate streams with backpressure.
import { Readable, Writable } from 'node:stream';
import type { Socket } from 'node:net';
import type { RemoteExit, RemoteProcess } from '../transport/remote-process.js';
import type { CallerStdio } from './caller-stdio.js';
import { pipeHandingOff } from '../lib/handoff.js';
import { optimizeSooner } from '../lib/tier-up.js';
import { Frame, FrameDecoder, encodeFrame, type FrameType } from './frame-codec.js';

/** Writes typed frames to a socket with backpressure: resolves the callback once flushed. */
function frameWriter(socket: Socket, type: FrameType, onEnd?: () => void): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (socket.write(encodeFrame(type, chunk))) callback();
      else socket.once('drain', () => { callback(); });
    },
    final(callback) {
      onEnd?.();
      callback();
    },
  });
}

/**
 * Both ends of a relayed launch speak the same frames; `side` says which streams are ours.
 * On the person's side (client) stdin goes out and stdout/stderr come in.
 */
export function framedProcess(socket: Socket, leftover: Buffer): RemoteProcess {
  const stdout = new Readable({ read: () => socket.resume() });
  const stderr = new Readable({ read: () => socket.resume() });
  const stdin = frameWriter(socket, Frame.stdin, () => socket.write(encodeFrame(Frame.stdinEnd)));
  const decoder = new FrameDecoder();
  const exitListeners: ((exit: RemoteExit) => void)[] = [];
  const exit = new Promise<RemoteExit>((resolve) => {
    let result: RemoteExit | undefined;
    const onData = (chunk: Buffer): void => {
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        result = { kind: 'broken', message: error instanceof Error ? error.message : String(error) };
        socket.destroy();
        return;
      }
      for (const { type, payload } of frames) {
        if (type === Frame.stdout && !stdout.push(payload)) socket.pause();
        else if (type === Frame.stderr && !stderr.push(payload)) socket.pause();
        else if (type === Frame.exit) {
          // The daemon's last frame (it ends the socket with it): the launch is over now, not
          // only once the socket's close has come round the event loop.
          const ended = JSON.parse(payload.toString()) as RemoteExit;
          result = ended;
          stdout.push(null);
          stderr.push(null);
          resolve(ended);
          for (const listener of exitListeners.splice(0)) listener(ended);
        }
      }
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      stdout.push(null);
      stderr.push(null);
      resolve(result ?? { kind: 'broken', message: 'the local daemon went away during the launch' });
    });
    if (leftover.length > 0) onData(leftover);
  });
  return {
    stdin,
    stdout,
    stderr,
    resize(cols, rows) {
      socket.write(encodeFrame(Frame.resize, JSON.stringify({ cols, rows })));
    },
    signal(name) {
      socket.write(encodeFrame(Frame.signal, JSON.stringify({ name })));
    },
    close() {
      socket.destroy();
    },
    exit,
    onExitKnown(listener) {
      exitListeners.push(listener);
    },
  };
}

/** The daemon's half: relays frames from the socket to a remote process and back. */
export function relayToProcess(socket: Socket, remote: RemoteProcess, leftover: Buffer, local?: CallerStdio): Promise<void> {
  const decoder = new FrameDecoder();
  const onData = (chunk: Buffer): void => {
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    for (const { type, payload } of frames) {
      switch (type) {
        case Frame.stdin:
          if (!remote.stdin.write(payload)) {
            socket.pause();
            remote.stdin.once('drain', () => socket.resume());
          }
          break;
        case Frame.stdinEnd:
          remote.stdin.end();
          break;
        case Frame.resize: {
          const size = JSON.parse(payload.toString()) as { cols: number; rows: number };
          remote.resize(size.cols, size.rows);
          break;
        }
        case Frame.signal:
          remote.signal((JSON.parse(payload.toString()) as { name: string }).name);
          break;
        case Frame.stdout:
        case Frame.stderr:
        case Frame.exit:
          // Frames the daemon sends, never receives: a confused or hostile client; ignore.
          break;
        default: {
          const unexpected: never = type;
          return unexpected;
        }
      }
    }
  };
  socket.on('data', onData);
  if (leftover.length > 0) onData(leftover);
  // Descriptors the daemon opened itself (caller-stdio.ts) skip the frames and the CLI.
  remote.stdin.on('error', () => undefined);
  if (local?.stdin !== undefined) {
    local.stdin.on('error', () => {
      remote.stdin.end();
    });
    // The person's own terminal: this daemon relays its keys and screen (lib/tier-up.ts).
    if ((local.stdin as { isTTY?: boolean }).isTTY === true) optimizeSooner();
    pipeHandingOff(local.stdin, remote.stdin);
  }
  const flushes: Promise<void>[] = [];
  const output = (stream: Readable, own: Writable | undefined, type: FrameType): void => {
    if (own === undefined) {
      stream.pipe(frameWriter(socket, type));
      return;
    }
    // The reader went away (EPIPE): as when the CLI died of it, the session ends. What is still
    // buffered is thrown away, or the channel would never get to its end and close.
    own.on('error', () => {
      stream.unpipe(own);
      stream.resume();
      local?.stdin?.unpipe();
      local?.stdin?.destroy();
      remote.close();
    });
    flushes.push(new Promise<void>((resolve) => {
      own.once('finish', resolve);
      own.once('close', resolve);
      own.once('error', () => { resolve(); });
    }));
    // The person's own terminal or output: no hand-off (see cli/attach.ts).
    stream.pipe(own);
  };
  output(remote.stdout, local?.stdout, Frame.stdout);
  output(remote.stderr, local?.stderr, Frame.stderr);
  if (local !== undefined) socket.once('close', () => { local.destroy(); });
  const outputs = [remote.stdout, remote.stderr].map((stream) => new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  }));
  const cliGone = new Promise<void>((resolve) => { socket.once('close', () => { resolve(); }); });
  return remote.exit.then(async (exit) => {
    // All of the output goes before the status, however slowly the CLI's reader takes it: the
    // exit came after both EOFs, so the streams end once read. Only a CLI that went away, or a
    // broken session (then within a second), cuts it short.
    const cut = exit.kind === 'broken' ? [cliGone, new Promise((resolve) => setTimeout(resolve, 1000))] : [cliGone];
    await Promise.race([Promise.all(outputs), ...cut]);
    if (local !== undefined) {
      // Everything written to the caller's terminal or pipe before the status reaches the CLI
      // (its shell prints the prompt next), and no more of its input read.
      local.stdin?.unpipe();
      local.stdin?.destroy();
      for (const [stream, own] of [[remote.stdout, local.stdout], [remote.stderr, local.stderr]] as const) {
        if (own === undefined) continue;
        stream.unpipe(own);
        own.end();
      }
      if (!socket.destroyed) await Promise.all(flushes);
      local.destroy();
    }
    socket.end(encodeFrame(Frame.exit, JSON.stringify(exit)));
  });
}
