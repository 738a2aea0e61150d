// Several SSH messages that go out together, in one write to the socket. On loopback (and on a
// LAN) every write(2) costs the sender the whole trip through the TCP stack, and wakes the peer
// once per message: the messages of one moment (a launch's requests; its status, EOF and close)
// are written as one.

interface Corkable {
  cork(): void;
  uncork(): void;
}

function corkable(value: unknown): Corkable | undefined {
  const socket = value as Partial<Corkable> | undefined;
  return typeof socket?.cork === 'function' && typeof socket.uncork === 'function' ? socket as Corkable : undefined;
}

/** The socket under an ssh2 client or server connection (its own `_sock`), when it has that shape. */
export function connectionSocket(connection: unknown): Corkable | undefined {
  return corkable((connection as { _sock?: unknown } | undefined)?._sock);
}

/** The socket under an ssh2 channel (`_client._sock`), when it has that shape. */
export function channelSocket(channel: unknown): Corkable | undefined {
  return connectionSocket((channel as { _client?: unknown } | undefined)?._client);
}

/**
 * Runs SEND with the socket corked, then writes what it sent at once; with `nextTick`, a turn
 * of process.nextTick later, for messages ssh2 sends from a stream's 'finish' (a channel's EOF
 * and close after end()). Without a socket of that shape, SEND just runs.
 */
export function corked(socket: Corkable | undefined, send: () => void, options: { nextTick?: boolean } = {}): void {
  socket?.cork();
  try {
    send();
  } finally {
    if (socket !== undefined) {
      if (options.nextTick === true) process.nextTick(() => { socket.uncork(); });
      else socket.uncork();
    }
  }
}
