// The daemon's SSH server (ssh2): public-key authentication only; each session channel's exec
// request names an app and its arguments, which become a launch in a fresh sandbox. Works with
// ebp's own client and with OpenSSH's `ssh -p PORT HOST APP`.
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import ssh2, { type AuthContext, type Connection, type PseudoTtyInfo, type ServerChannel, type Session as SshSession } from 'ssh2';
import { parseX11Request, type X11Forwarding, type X11Request } from '../display/x11-host.js';
import { DISPLAY_ENV, parseDisplayRequest, type VncDisplay } from '../display/vnc.js';
import { EbpError } from '../lib/errors.js';
import { writesDone } from '../lib/streams.js';
import { fingerprintOf } from '../peer/keys.js';
import type { LaunchService, PeerIdentity, Session } from '../host/launch.js';
import { splitShellWords } from './shell-words.js';
import { channelSocket, corked } from './corked.js';
import { repairWindowHandling } from './ssh2-window.js';
import { FILES_ENV, filesChannelToken, MAX_SPEC_BYTES, parseFilesSpec, type FilesSpec } from '../files/spec.js';
import { READ_AHEAD_HELLO } from '../files/read-ahead.js';
import { pipeHandingOff } from '../lib/handoff.js';
import { optimizeSooner } from '../lib/tier-up.js';

const { Server, utils } = ssh2;

export interface SshServerOptions {
  readonly hostKey: string;
  readonly port: number;
  /** Listen address; default all. */
  readonly host?: string;
  readonly launch: LaunchService;
  /** Answers to the ebp:* queries that peers make (catalogue, icons). */
  readonly queries: PeerQueries;
  readonly log: (event: string, fields?: Record<string, unknown>) => void;
}

export interface PeerQueries {
  apps(): unknown;
  status(): unknown;
  /** `ebp:icon APP`: the app's icon as { type, data (base64) }; EbpError when there is none. */
  icon(appId: string): Promise<unknown>;
}

/** Signals a client may send to the app (RFC 4254 names, without SIG). */
const SIGNALS = new Set(['INT', 'TERM', 'HUP', 'QUIT', 'KILL', 'USR1', 'USR2', 'ALRM', 'CONT', 'STOP', 'TSTP', 'WINCH']);
const MAX_SESSIONS_PER_CONNECTION = 16;
const MAX_ENV = 32;
/** Open `ebp:files` channels a connection may hold before a launch claims them. */
const MAX_PARKED_FILES = 4;
/** An `ebp:files` channel no launch claimed within this is closed. */
const PARKED_FILES_MS = 60_000;

/**
 * SFTP channels of one connection (`ebp:files TOKEN`) waiting for the launch that names them.
 * Per connection, so that no other peer can claim one by guessing its token.
 */
type ParkedFiles = Map<string, ServerChannel>;

/**
 * Answers a channel request. ssh2 passes no accept/reject function when the client asked for
 * no reply (want_reply false), whatever its typings say.
 */
function reply(answer: (() => void) | undefined): void {
  answer?.();
}

/** The key type named inside an SSH public key blob (string at the start). */
function blobType(blob: Buffer): string {
  if (blob.length < 4) return '';
  const length = blob.readUInt32BE(0);
  return length > 64 || blob.length < 4 + length ? '' : blob.toString('latin1', 4, 4 + length);
}

export class SshServer {
  readonly #server: InstanceType<typeof Server>;
  readonly #net: NetServer;
  readonly #connections = new Set<Connection>();
  readonly #options: SshServerOptions;
  #closed = false;
  #unrepairedLogged = false;

  private constructor(options: SshServerOptions) {
    this.#options = options;
    this.#server = new Server({ hostKeys: [options.hostKey], ident: 'ebrainpool' }, (client, info) => {
      this.#onConnection(client, info.ip);
    });
    // Our own listener, so that the port and errors are ours to report; ssh2 gets each socket.
    this.#net = createServer((socket: Socket) => {
      socket.setNoDelay(true);
      this.#server.injectSocket(socket);
    });
  }

  static async listen(options: SshServerOptions): Promise<SshServer> {
    const server = new SshServer(options);
    await new Promise<void>((resolve, reject) => {
      server.#net.once('error', (error: NodeJS.ErrnoException) => {
        reject(error.code === 'EADDRINUSE'
          ? new EbpError('USAGE', `port ${options.port} is already in use`, { hint: 'pick another with --port N, or --port 0 for a free one' })
          : error);
      });
      server.#net.listen({ port: options.port, host: options.host }, resolve);
    });
    return server;
  }

  get port(): number {
    return (this.#net.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const client of this.#connections) client.end();
    await new Promise<void>((resolve) => this.#net.close(() => { resolve(); }));
  }

  #onConnection(client: Connection, ip: string): void {
    const log = this.#options.log;
    let peer: PeerIdentity | undefined;
    let sessions = 0;
    const parked: ParkedFiles = new Map();
    this.#connections.add(client);
    client.on('error', (error) => { log('connection-error', { ip, error: error.message }); });
    client.on('close', () => this.#connections.delete(client));

    client.on('authentication', (ctx: AuthContext) => {
      if (ctx.method !== 'publickey') {
        ctx.reject(['publickey']);
        return;
      }
      const type = blobType(ctx.key.data);
      const parsed = utils.parseKey(`${type} ${ctx.key.data.toString('base64')}`);
      if (parsed instanceof Error || Array.isArray(parsed)) {
        ctx.reject(['publickey']);
        return;
      }
      // Without a signature the client only asks whether this key would do.
      if (ctx.signature === undefined || ctx.blob === undefined) {
        ctx.accept();
        return;
      }
      if (!parsed.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
        log('auth-failed', { ip, reason: 'bad signature' });
        ctx.reject(['publickey']);
        return;
      }
      peer = { fingerprint: fingerprintOf(ctx.key.data), publicKey: `${type} ${ctx.key.data.toString('base64')}`, claimedName: ctx.username };
      ctx.accept();
    });

    client.on('ready', () => {
      if (peer === undefined) {
        client.end();
        return;
      }
      const who = peer;
      log('peer-connected', { ip, peer: who.fingerprint, name: who.claimedName });
      client.on('session', (accept, reject) => {
        if (sessions >= MAX_SESSIONS_PER_CONNECTION) {
          reply(reject);
          return;
        }
        sessions += 1;
        const session = accept();
        this.#onSession(session, who, parked, () => {
          sessions -= 1;
        }, client);
      });
    });
  }

  #onSession(ssh: SshSession, peer: PeerIdentity, parked: ParkedFiles, onEnd: () => void, client: Connection): void {
    // RFC 4254 allows signal and window-change requests after the client's EOF (its stdin ended);
    // ssh2 refuses every request once it saw EOF. Keep answering until the channel closes.
    ssh.on('eof', () => {
      (ssh as unknown as { _ending: boolean })._ending = false;
    });
    let pty: PseudoTtyInfo | undefined;
    const env: Record<string, string> = {};
    let filesText: string | undefined;
    let running: Session | undefined;
    let started = false;
    let x11: X11Request | undefined;
    let display: VncDisplay | undefined;

    ssh.on('pty', (accept, reject, info) => {
      if (started) {
        reply(reject);
        return;
      }
      pty = info;
      reply(accept);
    });
    // X11 forwarding (ssh -X, ebp run with DISPLAY): the sandbox will get a display of its own whose
    // connections come back to this client as x11 channels (src/display/x11-host.ts).
    ssh.on('x11', (accept, reject, info) => {
      try {
        if (started) throw new EbpError('USAGE', 'X11 forwarding must be asked for before the command');
        x11 = parseX11Request(info);
        reply(accept);
      } catch (error) {
        this.#options.log('x11-refused', { peer: peer.fingerprint, reason: error instanceof Error ? error.message : String(error) });
        reply(reject);
      }
    });
    ssh.on('env', (accept, reject, info) => {
      if (info.key === FILES_ENV) {
        if (filesText !== undefined || Buffer.byteLength(info.val) > MAX_SPEC_BYTES) {
          reply(reject);
          return;
        }
        filesText = info.val;
        reply(accept);
        return;
      }
      // The page's viewer asks for the app on its own display (EBP_DISPLAY=vnc:WxH), validated here.
      if (info.key === DISPLAY_ENV && !started) {
        try {
          display = parseDisplayRequest(info.val);
          reply(accept);
        } catch {
          reply(reject);
        }
        return;
      }
      const ok = (info.key === 'LANG' || /^LC_[A-Z]+$/.test(info.key)) && /^[A-Za-z0-9_.@:+-]{1,64}$/.test(info.val) && Object.keys(env).length < MAX_ENV;
      if (!ok) {
        reply(reject);
        return;
      }
      env[info.key] = info.val;
      reply(accept);
    });
    ssh.on('window-change', (accept, _reject, info) => {
      if (running?.io.kind === 'terminal') running.io.pty.resize({ cols: info.cols, rows: info.rows });
      else if (pty !== undefined) pty = { ...pty, cols: info.cols, rows: info.rows };
      reply(accept);
    });
    ssh.on('signal', (accept, reject, info) => {
      const name = info.name.replace(/^SIG/, '');
      if (running === undefined || !SIGNALS.has(name)) {
        reply(reject);
        return;
      }
      running.handle.kill(`SIG${name}` as NodeJS.Signals);
      reply(accept);
    });
    ssh.on('shell', (accept) => {
      const channel = accept();
      channel.stderr.write('ebp: this is an eBrainPool host. Run an app with: ssh -p PORT HOST APP [ARGS]\r\n       the shared apps: ssh -p PORT HOST ebp:apps\r\n');
      channel.exit(2);
      channel.end();
    });
    ssh.on('exec', (accept, _reject, info) => {
      if (started) return;
      started = true;
      const channel = accept();
      if (!repairWindowHandling(channel) && !this.#unrepairedLogged) {
        this.#unrepairedLogged = true;
        this.#options.log('ssh2-unrepaired', { reason: 'this ssh2 version\'s flow control is not the one ebp repairs: stdout and stderr together may stall' });
      }
      const token = filesChannelToken(info.command);
      if (token !== undefined) {
        this.#park(channel, token, parked, onEnd);
        return;
      }
      const forwarding = x11 === undefined ? undefined : { request: x11, openChannel: () => openX11Channel(client) };
      void this.#exec(channel, info.command, { peer, env, pty, filesText, parked }, (session) => {
        running = session;
      }, { x11: forwarding, display }).finally(onEnd);
    });
  }

  /**
   * Keeps an `ebp:files` channel until the launch naming its token claims it; closed when
   * unclaimed for PARKED_FILES_MS, or when too many are open.
   */
  #park(channel: ServerChannel, token: string, parked: ParkedFiles, onEnd: () => void): void {
    channel.on('error', () => undefined);
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      if (parked.get(token) === channel) parked.delete(token);
      onEnd();
    };
    const timer = setTimeout(() => {
      if (parked.get(token) === channel) channel.close();
    }, PARKED_FILES_MS);
    timer.unref();
    channel.once('close', end);
    if (parked.has(token) || parked.size >= MAX_PARKED_FILES) {
      channel.stderr.write('ebp: refused: too many open file channels, or the token is in use\n');
      channel.exit(1);
      channel.end();
      return;
    }
    parked.set(token, channel);
    // This side keeps the person's read-ahead answers (files/read-ahead.ts): say so.
    channel.stderr.write(READ_AHEAD_HELLO);
  }

  /** The launch's files: the validated spec and the channel it names (claimed, so used once). */
  #claimFiles(text: string | undefined, parked: ParkedFiles): { spec: FilesSpec; sftp: ServerChannel } | undefined {
    if (text === undefined) return undefined;
    const spec = parseFilesSpec(text);
    const sftp = parked.get(spec.token);
    if (sftp === undefined) {
      throw new EbpError('USAGE', 'the launch names a file channel that is not open on this connection', { hint: 'the ebp client opens it first; update the client' });
    }
    parked.delete(spec.token);
    return { spec, sftp };
  }

  async #exec(
    channel: ServerChannel,
    command: string,
    context: { peer: PeerIdentity; env: Record<string, string>; pty: PseudoTtyInfo | undefined; filesText: string | undefined; parked: ParkedFiles },
    onStarted: (session: Session) => void,
    { x11, display }: { x11: X11Forwarding | undefined; display: VncDisplay | undefined },
  ): Promise<void> {
    const { peer, env, pty } = context;
    const log = this.#options.log;
    let files: { spec: FilesSpec; sftp: ServerChannel } | undefined;
    const abort = new AbortController();
    channel.on('close', () => { abort.abort(); });
    channel.on('error', () => { abort.abort(); });
    const eol = pty === undefined ? '\n' : '\r\n';
    try {
      const words = splitShellWords(command);
      const [appId, ...args] = words;
      if (appId === undefined) throw new EbpError('USAGE', 'no app named', { hint: 'ssh -p PORT HOST APP [ARGS]; list them with: ssh -p PORT HOST ebp:apps' });
      if (appId.startsWith('ebp:')) {
        await this.#query(channel, appId, args);
        return;
      }
      files = this.#claimFiles(context.filesText, context.parked);
      const session = await this.#options.launch.launch(
        {
          peer, appId, args, env,
          ...(files === undefined ? {} : { files }),
          ...(x11 === undefined ? {} : { x11 }),
          ...(display === undefined ? {} : { display }),
          ...(pty === undefined || display !== undefined ? {} : { terminal: { term: pty.term.slice(0, 64) || 'xterm', cols: pty.cols, rows: pty.rows } }),
        },
        {
          signal: abort.signal,
          onWaiting: (request) => {
            channel.stderr.write(`ebp: waiting for the owner of this machine to allow it (request ${request.id})...${eol}`);
          },
        },
      );
      onStarted(session);
      log('session-started', { session: session.id, peer: peer.fingerprint, app: session.app.id, ...(session.spare ? { spare: true } : {}) });
      const outputDone = this.#wire(channel, session);
      // The status goes back as soon as it is known; the sandbox's teardown and the audit
      // record finish in the background (session.done).
      const exit = await session.handle.ended;
      await outputDone;
      if (exit.message !== undefined) channel.stderr.write(`ebp: ${exit.message}${eol}`);
      if (await outputSent(channel, abort.signal)) {
        // The status, EOF and close in one write (ssh2 sends the last two on the next tick).
        corked(channelSocket(channel), () => {
          if (exit.reason === 'signaled' && exit.code > 128) channel.exit(signalName(exit.code - 128), false, '');
          else channel.exit(exit.code);
          channel.end();
        }, { nextTick: true });
      }
      // Logged once the status is on its way: the line is no part of the person's wait.
      log('session-ended', { session: session.id, status: exit.code, reason: exit.reason });
    } catch (error) {
      const ebpError = error instanceof EbpError ? error : new EbpError('INTERNAL', error instanceof Error ? error.message : String(error));
      log('launch-refused', { peer: peer.fingerprint, code: ebpError.code, reason: ebpError.message });
      if (!abort.signal.aborted) {
        channel.stderr.write(`ebp: ${ebpError.message}${eol}`);
        if (ebpError.hint !== undefined) channel.stderr.write(`  fix: ${ebpError.hint}${eol}`);
        if (await outputSent(channel, abort.signal)) {
          channel.exit(ebpError.exitStatus === 0 ? 1 : ebpError.exitStatus);
          channel.end();
        }
      }
    } finally {
      // The files channel lives exactly as long as the launch: closing it ends the person's
      // sftp-server, and sshfs (if still there) sees EOF.
      files?.sftp.close();
    }
  }

  /** Connects the sandbox to the channel; resolves when all of its output has been passed on. */
  async #wire(channel: ServerChannel, session: Session): Promise<void> {
    const { handle, io } = session;
    if (io.kind === 'terminal') {
      const master = io.pty.master;
      // This daemon relays a terminal from now on (lib/tier-up.ts).
      optimizeSooner();
      // Keystrokes and screen output: each chunk hands the CPU to its reader (lib/handoff.ts).
      pipeHandingOff(channel, master);
      pipeHandingOff(master, channel, { end: false });
      await new Promise<void>((resolve) => {
        master.once('close', resolve);
        // A pty master reports EIO (handled in openPty) once the last process of the session is gone.
        void session.done.then(() => setTimeout(() => master.destroy(), 2000).unref());
      });
      channel.unpipe(master);
      return;
    }
    const { stdin, stdout, stderr } = handle;
    if (stdin !== null) {
      stdin.on('error', () => undefined);
      pipeHandingOff(channel, stdin);
    }
    if (stdout !== null) pipeHandingOff(stdout, channel, { end: false });
    if (stderr !== null) pipeHandingOff(stderr, channel.stderr, { end: false });
    // At its end an output has handed all of its bytes on (pipe writes them as they come): its
    // close, a turn of the event loop later, is not waited for.
    await Promise.all([stdout, stderr].map(async (output) => outputEnded(output)));
  }

  async #query(channel: ServerChannel, query: string, args: readonly string[]): Promise<void> {
    if (query === 'ebp:icon') {
      // The app id is checked against the catalogue by the daemon; here only its shape.
      const [appId] = args;
      if (args.length !== 1 || appId === undefined || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(appId)) {
        throw new EbpError('USAGE', 'ebp:icon takes one app id', { hint: 'ebp:icon APP' });
      }
      channel.write(`${JSON.stringify(await this.#options.queries.icon(appId))}\n`);
      channel.exit(0);
      channel.end();
      return;
    }
    switch (query) {
      case 'ebp:ping':
        channel.write('pong\n');
        break;
      case 'ebp:apps':
        channel.write(`${JSON.stringify(this.#options.queries.apps())}\n`);
        break;
      case 'ebp:status':
        channel.write(`${JSON.stringify(this.#options.queries.status())}\n`);
        break;
      default:
        channel.stderr.write(`ebp: unknown query "${query.slice(0, 64)}"\n`);
        channel.exit(2);
        channel.end();
        return;
    }
    channel.exit(0);
    channel.end();
  }
}

/**
 * Resolves true once everything written to the channel and its stderr has gone out, or false
 * when the channel went away first. ssh2 sends exit-status at once, ahead of output still waiting
 * for the client's window: without this, a client may see the status before the last bytes.
 */
async function outputSent(channel: ServerChannel, gone: AbortSignal): Promise<boolean> {
  if (gone.aborted) return false;
  const onGone = new Promise<void>((resolve) => { gone.addEventListener('abort', () => { resolve(); }, { once: true }); });
  await Promise.race([Promise.all([writesDone(channel), writesDone(channel.stderr)]), onGone]);
  return !gone.aborted;
}

/** Resolves once OUTPUT has ended (or was closed or destroyed without ending); at once without one. */
async function outputEnded(output: Readable | null): Promise<void> {
  if (output === null || output.readableEnded || output.destroyed) return;
  await new Promise<void>((resolve) => {
    output.once('end', resolve);
    output.once('close', resolve);
  });
}

/** Opens an x11 channel back to the client for one X connection made in the sandbox. */
function openX11Channel(client: Connection): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    // The originator is the sandbox's own display socket; there is no address to tell.
    try {
      client.x11('127.0.0.1', 0, (error, channel) => {
        if (error instanceof Error) reject(error);
        else resolve(channel);
      });
    } catch (error) {
      // The connection is already gone.
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

const SIGNAL_NAMES: Readonly<Record<number, string>> = { 1: 'HUP', 2: 'INT', 3: 'QUIT', 4: 'ILL', 6: 'ABRT', 8: 'FPE', 9: 'KILL', 11: 'SEGV', 13: 'PIPE', 14: 'ALRM', 15: 'TERM' };

function signalName(number: number): string {
  return SIGNAL_NAMES[number] ?? 'KILL';
}
