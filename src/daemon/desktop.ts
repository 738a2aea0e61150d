// GUI apps of the pool opened on the daemon's own display ("Open on this desktop" in the page):
// when the daemon has a usable X display (DISPLAY at start, or [ui] display), a launch goes
// through the daemon's SSH connection to the peer with X11 forwarding to that display, each with
// a new untrusted cookie (display/x11-local.ts, as `ebp run` makes): the app can neither read
// the screen nor other windows, nor inject input. Each launch is an item the page lists and
// stops (stopping closes the remote session; its windows go with it).
import { randomBytes } from 'node:crypto';
import { EbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { DesktopLaunchView, DesktopView } from '../lib/views.js';
import { parseDisplay, prepareLocalDisplay, type LocalDisplay } from '../display/x11-local.js';
import { exitStatus, type RemoteProcess } from '../transport/remote-process.js';

export type { DesktopLaunchState, DesktopLaunchView, DesktopView } from '../lib/views.js';


/** Whether this daemon can show windows: the display, or why not. */
export type DesktopStatus =
  | { readonly kind: 'none' }
  | { readonly kind: 'checking'; readonly display: string }
  | { readonly kind: 'ready'; readonly display: string }
  | { readonly kind: 'unusable'; readonly display: string; readonly reason: string };


export interface DesktopOptions {
  /** The daemon's display ('' or undefined: none). */
  readonly display: string | undefined;
  /** The daemon's environment (XAUTHORITY for the display's cookie). */
  readonly env: NodeJS.ProcessEnv;
  /**
   * Runs `appId` on the peer with these X11 settings; resolves with the session and the peer's
   * name. `onWindow` is called as each of the app's X connections reaches the display.
   */
  readonly launch: (peer: string, appId: string, x11: LocalDisplay, onWindow: () => void) => Promise<{ remote: RemoteProcess; peerName: string }>;
  readonly onChange: () => void;
  readonly log: Logger;
}

/** Ended launches kept for the page to show how they ended (oldest dropped first). */
const KEEP_ENDED = 10;
/** Launches on this desktop at once. */
const MAX_RUNNING = 32;

interface Entry {
  view: DesktopLaunchView;
  remote: RemoteProcess | undefined;
  stopRequested: boolean;
}

export class DesktopLaunches {
  readonly #options: DesktopOptions;
  readonly #entries = new Map<string, Entry>();
  #status: DesktopStatus;
  #closed = false;

  constructor(options: DesktopOptions) {
    this.#options = options;
    const display = options.display ?? '';
    this.#status = display === '' ? { kind: 'none' } : { kind: 'checking', display };
  }

  /**
   * Checks the display once: parses it and makes an untrusted cookie there (which needs the X
   * server running, reachable and with the SECURITY extension). The cookie is thrown away: each
   * launch makes its own, so none expires unused.
   */
  async check(): Promise<DesktopStatus> {
    const status = this.#status;
    if (status.kind !== 'checking') return status;
    try {
      parseDisplay(status.display);
      await prepareLocalDisplay({ display: status.display, trusted: false, env: this.#options.env });
      this.#status = { kind: 'ready', display: status.display };
      this.#options.log('desktop-ready', { display: status.display });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#status = { kind: 'unusable', display: status.display, reason };
      this.#options.log('desktop-unavailable', { display: status.display, reason });
    }
    this.#options.onChange();
    return this.#status;
  }

  get status(): DesktopStatus {
    return this.#status;
  }

  view(): DesktopView {
    return { display: this.#status.kind === 'ready' ? this.#status.display : undefined, launches: [...this.#entries.values()].map((entry) => entry.view) };
  }

  /** Starts `appId` on `peer` with its windows here; returns at once (the owner may have to allow it). */
  open(peer: string, appId: string): DesktopLaunchView {
    const status = this.#status;
    if (status.kind !== 'ready') {
      const why = status.kind === 'none' ? 'this daemon has no display (it was started without DISPLAY)'
        : status.kind === 'checking' ? `the display ${status.display} is still being checked`
          : `the display ${status.display} is not usable: ${status.reason}`;
      throw new EbpError('DISPLAY_UNAVAILABLE', `cannot open windows on this desktop: ${why}`, {
        hint: 'start the daemon with DISPLAY set to a running X server (or [ui] display = ":N"), or open the app in the page',
      });
    }
    if (this.#closed) throw new EbpError('SESSION_BROKEN', 'the daemon is stopping');
    if (this.#running() >= MAX_RUNNING) throw new EbpError('USAGE', `${MAX_RUNNING} apps are already open on this desktop`, { hint: 'stop one first' });
    const id = randomBytes(8).toString('hex');
    const entry: Entry = {
      view: { id, app: appId, peer, peerName: peer, state: 'starting', startedAt: new Date().toISOString() },
      remote: undefined,
      stopRequested: false,
    };
    this.#entries.set(id, entry);
    this.#options.onChange();
    void this.#run(entry, status.display);
    return entry.view;
  }

  async #run(entry: Entry, display: string): Promise<void> {
    const { peer, app } = entry.view;
    let remote: RemoteProcess;
    try {
      // Per launch: an untrusted cookie made now expires only 20 min after its last window closed.
      const x11 = await prepareLocalDisplay({ display, trusted: false, env: this.#options.env });
      const started = await this.#options.launch(peer, app, x11, () => { this.#advance(entry, 'running'); });
      remote = started.remote;
      entry.view = { ...entry.view, peerName: started.peerName };
    } catch (error) {
      const ebp = error instanceof EbpError ? error : new EbpError('SESSION_BROKEN', error instanceof Error ? error.message : String(error));
      this.#end(entry, `status ${ebp.exitStatus}: ${ebp.message}`);
      return;
    }
    entry.remote = remote;
    if (entry.stopRequested || this.#closed) remote.close();
    this.#options.onChange();
    this.#options.log('desktop-launch', { peer, app, display });
    // No input, and its output is not shown: read it so the channel never stalls.
    remote.stdin.end();
    remote.stdout.resume();
    let lastError = '';
    remote.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      lastError = text.trim().split('\n').pop() ?? lastError;
      // The peer's own words while its owner decides (transport/ssh-server.ts, onWaiting).
      if (/waiting for the owner of this machine to allow it/.test(text)) this.#advance(entry, 'waiting');
    });
    const exit = await remote.exit;
    if (entry.stopRequested) {
      this.#end(entry, 'stopped here');
      return;
    }
    this.#end(entry, `status ${exitStatus(exit)}${lastError === '' ? '' : `: ${lastError.replace(/^ebp: /, '').slice(0, 200)}`}`);
  }

  /** Moves a launch on (starting → waiting → running), never back and never out of ended. */
  #advance(entry: Entry, state: 'waiting' | 'running'): void {
    const order = { starting: 0, waiting: 1, running: 2, ended: 3 } as const;
    if (order[state] <= order[entry.view.state]) return;
    entry.view = { ...entry.view, state };
    this.#options.onChange();
  }

  #end(entry: Entry, outcome: string): void {
    entry.view = { ...entry.view, state: 'ended', outcome };
    entry.remote = undefined;
    const ended = [...this.#entries.values()].filter((found) => found.view.state === 'ended');
    for (const old of ended.slice(0, Math.max(0, ended.length - KEEP_ENDED))) this.#entries.delete(old.view.id);
    this.#options.onChange();
  }

  #running(): number {
    return [...this.#entries.values()].filter((entry) => entry.view.state !== 'ended').length;
  }

  /** Stops a running launch (closing its session), or removes an ended one from the list. */
  stop(id: string): DesktopLaunchView {
    const entry = this.#entries.get(id);
    if (entry === undefined) throw new EbpError('NOT_FOUND', `no launch "${id.slice(0, 32)}" on this desktop`);
    if (entry.view.state === 'ended') {
      this.#entries.delete(id);
      this.#options.onChange();
      return entry.view;
    }
    entry.stopRequested = true;
    entry.remote?.close();
    return entry.view;
  }

  /** Ends every launch (the daemon is stopping). */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      entry.stopRequested = true;
      entry.remote?.close();
    }
  }
}
