// The host side of a launch, free of any transport: is this peer allowed to run this app, then a
// fresh sandbox for it with the app's own settings, registered as a session and audited.
// The SSH server and the web page both call this.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createStage, removeStage, removeStaleStages } from '../files/stage.js';
import type { FilesSpec } from '../files/spec.js';
import { buildLaunchArgv, type Catalog, type SharedApp } from '../catalog/catalog.js';
import { openSandboxDisplay, type SandboxDisplay, type X11Forwarding } from '../display/x11-host.js';
import { vncLaunchArgv, type VncDisplay } from '../display/vnc.js';
import { EbpError } from '../lib/errors.js';
import { openPty, type Pty, type TerminalSize } from '../lib/pty.js';
import type { AuditLog } from '../peer/audit.js';
import type { TrustStore } from '../peer/trust-store.js';
import type { SandboxEngine } from '../sandbox/engine.js';
import { buildPolicy } from '../sandbox/request.js';
import { startSandbox, type SandboxExit, type SandboxHandle } from '../sandbox/runner.js';
import type { SpareSandboxes } from '../sandbox/spares.js';
import type { SandboxPolicy } from '../sandbox/policy.js';
import type { Approvals, PendingRequest } from './approvals.js';
import type { Sessions } from './sessions.js';

export type ApprovalPolicy = 'ask' | 'trusted-only' | 'open';

/** Who asks: proven by the SSH public-key signature; the name is only what they claim. */
export interface PeerIdentity {
  readonly fingerprint: string;
  /** OpenSSH public key line, kept so that "Always" can trust it. */
  readonly publicKey: string;
  readonly claimedName: string;
}

export interface LaunchRequest {
  readonly peer: PeerIdentity;
  readonly appId: string;
  readonly args: readonly string[];
  /** Client environment; only locale variables (and TERM with a terminal) pass. */
  readonly env: Readonly<Record<string, string>>;
  readonly terminal?: TerminalSize & { readonly term: string };
  /** The person's files: a validated spec and the SFTP stream that serves them. */
  readonly files?: { readonly spec: FilesSpec; readonly sftp: Duplex };
  /** The client asked for X11 forwarding: the sandbox gets a display of its own. */
  readonly x11?: X11Forwarding;
  /** Show the app on its own display in the person's browser (the RFB stream is its stdio). */
  readonly display?: VncDisplay;
}

export interface LaunchHooks {
  /** Called when the launch waits for the owner's decision. */
  readonly onWaiting?: (request: PendingRequest) => void;
  /** Aborting cancels a pending approval or stops the session. */
  readonly signal?: AbortSignal;
}

export type SessionIo =
  | { readonly kind: 'terminal'; readonly pty: Pty }
  | { readonly kind: 'pipes' };

export interface Session {
  readonly id: string;
  readonly app: SharedApp;
  readonly handle: SandboxHandle;
  readonly io: SessionIo;
  readonly done: Promise<SandboxExit>;
  /** It runs in a sandbox made ahead (sandbox/spares.ts). */
  readonly spare: boolean;
}

export interface HostServices {
  readonly catalog: () => Catalog;
  readonly trust: TrustStore;
  readonly approvals: Approvals;
  readonly sessions: Sessions;
  readonly audit: AuditLog;
  readonly engine: SandboxEngine;
  readonly approvalPolicy: () => ApprovalPolicy;
  readonly stateDir: string;
  /** This daemon's own key: the owner launching on their own machine (from the web page) is not asked. */
  readonly ownFingerprint?: string;
  /** Called when "Always" added a key to the trust store (the web page shows the list live). */
  readonly onTrusted?: () => void;
  /** Sandboxes made ahead for the next launches; none = each launch makes its own. */
  readonly spares?: SpareSandboxes;
}

type Authorization = 'trusted' | 'open' | 'allowed';

/** A session whose client vanished is ended within this (SIGTERM first, then SIGKILL). */
const CLIENT_GONE_GRACE_MS = 1000;

/**
 * The spare for an app's next launch is made when this one's sandbox has been torn down (in the
 * quiet moment after its status went out: lib/quiet.ts), or after this long if it is still
 * running: a short launch's own set-up and exit are not slowed by it.
 */
const SPARE_REFILL_MS = 1000;

const NAME_SAFE = /[^\p{L}\p{N} ._@()-]/gu;

/** A peer's claimed name, made safe to show and log (it is only a claim). */
export function displayName(claimed: string): string {
  const clean = claimed.replace(NAME_SAFE, '').trim().slice(0, 63);
  return clean === '' ? 'unknown' : clean;
}

export class LaunchService {
  readonly #host: HostServices;

  constructor(host: HostServices) {
    this.#host = host;
    // Stages left by a daemon that was killed (empty folders on the host's side).
    removeStaleStages(host.stateDir, host.engine.identity.switchUser);
  }

  /** The app as shared, or APP_NOT_SHARED naming it. */
  app(appId: string): SharedApp {
    const app = this.#host.catalog().get(appId);
    if (app === undefined) {
      throw new EbpError('APP_NOT_SHARED', `"${appId.slice(0, 128)}" is not an app this machine shares`, { hint: 'list the shared apps with `ebp apps PEER`' });
    }
    return app;
  }

  async authorize(peer: PeerIdentity, app: SharedApp, hooks: LaunchHooks = {}): Promise<Authorization> {
    if (this.#host.trust.find(peer.fingerprint) !== undefined || peer.fingerprint === this.#host.ownFingerprint) return 'trusted';
    const policy = this.#host.approvalPolicy();
    switch (policy) {
      case 'open':
        return 'open';
      case 'trusted-only':
        await this.#audit(peer, app, 'denied');
        throw new EbpError('PEER_UNTRUSTED', `this host runs apps only for keys it trusts, and ${peer.fingerprint} is not one of them`, {
          hint: 'ask the owner to run `ebp trust --key "<your public key>"` (see `ebp id --public-key`)',
        });
      case 'ask': {
        const outcome = await this.#host.approvals.request(
          { peerId: peer.fingerprint, peerName: displayName(peer.claimedName), app: app.id, appName: app.name },
          { ...(hooks.signal === undefined ? {} : { signal: hooks.signal }), ...(hooks.onWaiting === undefined ? {} : { onAdded: hooks.onWaiting }) },
        );
        switch (outcome) {
          case 'allow':
            return 'allowed';
          case 'always':
            await this.#host.trust.add(peer.publicKey, { name: displayName(peer.claimedName) });
            this.#host.onTrusted?.();
            return 'allowed';
          case 'deny':
            await this.#audit(peer, app, 'denied');
            throw new EbpError('APPROVAL_DENIED', `the owner denied running ${app.name}`);
          case 'timeout':
            await this.#audit(peer, app, 'timeout');
            throw new EbpError('APPROVAL_TIMEOUT', `the owner did not answer in time; ${app.name} was not started`, { hint: 'try again when the owner is at the machine' });
          case 'cancelled':
            throw new EbpError('SESSION_BROKEN', 'the launch was cancelled while waiting for approval');
          default:
            return assertNever(outcome);
        }
      }
      default:
        return assertNever(policy);
    }
  }

  /** Authorizes, then starts the app in a fresh sandbox. */
  async launch(request: LaunchRequest, hooks: LaunchHooks = {}): Promise<Session> {
    const app = this.app(request.appId);
    const authorization = await this.authorize(request.peer, app, hooks);
    if (hooks.signal?.aborted === true) throw new EbpError('SESSION_BROKEN', 'the client went away before the launch');
    const engine = this.#host.engine;
    const settings = app.settings;
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(request.env)) if (key === 'LANG' || key.startsWith('LC_')) env[key] = value;
    if (request.terminal !== undefined) env['TERM'] = request.terminal.term;
    let display: SandboxDisplay | undefined;
    let stage: string | undefined;
    try {
      display = request.x11 === undefined ? undefined : await openSandboxDisplay(request.x11, { baseDir: this.#displayDir(), identity: engine.identity });
      // The person's files: an empty stage owned by the sandbox user, where the sandbox's own
      // sshfs mounts them (in its private namespace); removed once the sandbox is gone.
      const files = request.files;
      stage = files === undefined ? undefined : createStage(this.#host.stateDir, randomBytes(8).toString('hex'), engine.identity.switchUser ? engine.identity : undefined);
      const policy = buildPolicy({
        command: request.display === undefined ? buildLaunchArgv(app, request.args) : vncLaunchArgv(buildLaunchArgv(app, request.args), request.display),
        network: settings.network,
        memoryBytes: settings.memoryBytes,
        cpus: settings.cpus,
        pids: settings.pids,
        env,
        ...(settings.persistentHome ? { homeDir: this.#homeFor(request.peer.fingerprint, app.id) } : {}),
        ...(display === undefined ? {} : { x11: display.mount }),
      }, engine.identity);
      const filesPolicy = files === undefined || stage === undefined ? policy : { ...policy, remoteFiles: { stage, mounts: files.spec.mounts } };
      return await this.#start(request, { app, authorization, policy: filesPolicy, sftp: files?.sftp, display, stage, hooks });
    } catch (error) {
      display?.close();
      if (stage !== undefined) removeStage(stage);
      throw error;
    }
  }

  async #start(
    request: LaunchRequest,
    { app, authorization, policy, sftp, display, stage, hooks }: {
      app: SharedApp; authorization: Authorization; policy: SandboxPolicy; sftp: Duplex | undefined;
      display: SandboxDisplay | undefined; stage: string | undefined; hooks: LaunchHooks;
    },
  ): Promise<Session> {
    const engine = this.#host.engine;
    const filesOptions = sftp === undefined ? {} : { sftp };
    // A launch with nothing made for it alone (no files, no display) can run in a spare.
    const spares = sftp === undefined && display === undefined && request.display === undefined ? this.#host.spares : undefined;
    const terminal = request.display === undefined ? request.terminal : undefined;
    const fromSpare = await spares?.start(policy, terminal);
    let io: SessionIo = fromSpare?.pty === undefined ? { kind: 'pipes' } : { kind: 'terminal', pty: fromSpare.pty };
    let handle: SandboxHandle;
    if (fromSpare !== undefined) {
      handle = fromSpare.handle;
    } else if (terminal === undefined) {
      handle = await startSandbox(policy, { engine, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', ...filesOptions });
    } else {
      const pty = openPty(terminal);
      try {
        handle = await startSandbox(policy, { engine, stdin: pty.slaveFd, stdout: pty.slaveFd, stderr: pty.slaveFd, terminal: true, ...filesOptions });
      } finally {
        pty.closeSlave();
      }
      io = { kind: 'terminal', pty };
    }
    if (spares !== undefined) {
      let refilled = false;
      const refill = (): void => {
        if (refilled) return;
        refilled = true;
        spares.refill(policy, terminal !== undefined);
      };
      setTimeout(refill, SPARE_REFILL_MS).unref();
      void handle.exited.then(refill);
    }
    const id = handle.id;
    const started = Date.now();
    this.#host.sessions.add({
      id, handle, app: app.id, peerId: request.peer.fingerprint, peerName: displayName(request.peer.claimedName),
      startedAt: new Date(started).toISOString(), terminal: io.kind === 'terminal',
    });
    // The client is gone: nobody reads the output any more, so the grace period is short.
    hooks.signal?.addEventListener('abort', () => void handle.stop(CLIENT_GONE_GRACE_MS), { once: true });
    // The app is gone: its X connections close with it, so that its windows go away at once.
    if (display !== undefined) void handle.ended.then(() => { display.close(); });
    const done = handle.exited.then(async (exit) => {
      if (stage !== undefined) removeStage(stage);
      await this.#audit(request.peer, app, authorization, exit).catch(() => undefined);
      return exit;
    });
    return { id, app, handle, io, done, spare: fromSpare !== undefined };
  }

  /** Per-launch X11 display folders; the sandbox user must pass through the state folder. */
  #displayDir(): string {
    if (this.#host.engine.identity.switchUser) chmodSync(this.#host.stateDir, 0o711);
    return join(this.#host.stateDir, 'display');
  }

  /** Per peer and app, so that two peers never share a home and one app's files stay its own. */
  #homeFor(fingerprint: string, appId: string): string {
    const root = join(this.#host.stateDir, 'homes');
    mkdirSync(root, { recursive: true, mode: 0o711 });
    // The sandbox user must traverse the state folder to reach its home; nothing in it is
    // readable by others (keys and lists are 0600).
    chmodSync(this.#host.stateDir, 0o711);
    const peerDir = join(root, createHash('sha256').update(fingerprint).digest('hex').slice(0, 16));
    mkdirSync(peerDir, { recursive: true, mode: 0o711 });
    return join(peerDir, appId);
  }

  async #audit(peer: PeerIdentity, app: SharedApp, decision: Authorization | 'denied' | 'timeout', exit?: SandboxExit): Promise<void> {
    await this.#host.audit.append({
      time: new Date().toISOString(),
      peerId: peer.fingerprint,
      peerName: displayName(peer.claimedName),
      app: app.id,
      decision: decision === 'allowed' ? 'allowed' : decision,
      ...(exit === undefined ? {} : {
        exitStatus: exit.code,
        durationMs: exit.durationMs,
        ...(exit.stats === undefined ? {} : { peakMemoryBytes: exit.stats.memoryPeakBytes }),
        oom: exit.reason === 'oom',
      }),
    });
  }
}

function assertNever(value: never): never {
  throw new EbpError('INTERNAL', `unexpected value ${String(value)}`);
}
