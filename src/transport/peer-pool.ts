// Connections to peers kept open by the daemon, so that launches after the first skip the SSH
// handshake (as OpenSSH's ControlMaster does). A broken connection is dropped and redialled.
import { endpointText, connectPeer, type ConnectOptions, type Endpoint, type PeerConnection } from './ssh-client.js';

export class PeerPool {
  readonly #connections = new Map<string, Promise<PeerConnection>>();
  readonly #options: Omit<ConnectOptions, 'expectedFingerprint'>;

  constructor(options: Omit<ConnectOptions, 'expectedFingerprint'>) {
    // Pooled connections serve launch after launch: each keeps a session channel open ahead.
    this.#options = { ...options, sessionsAhead: true };
  }

  async get(endpoint: Endpoint, expectedFingerprint?: string): Promise<PeerConnection> {
    const key = endpointText(endpoint);
    const existing = this.#connections.get(key);
    if (existing !== undefined) {
      const connection = await existing.catch(() => undefined);
      if (connection !== undefined && (expectedFingerprint === undefined || connection.fingerprint === expectedFingerprint)) return connection;
      this.#connections.delete(key);
      connection?.close();
    }
    const pending = connectPeer(endpoint, expectedFingerprint === undefined ? this.#options : { ...this.#options, expectedFingerprint });
    this.#connections.set(key, pending);
    try {
      const connection = await pending;
      void connection.closed.then(() => {
        if (this.#connections.get(key) === pending) this.#connections.delete(key);
      });
      return connection;
    } catch (error) {
      this.#connections.delete(key);
      throw error;
    }
  }

  close(): void {
    for (const pending of this.#connections.values()) void pending.then((connection) => { connection.close(); }, () => undefined);
    this.#connections.clear();
  }
}
