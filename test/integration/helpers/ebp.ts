// Shared helpers for the integration tests that run the real `bin/ebp sandbox`: run it with
// argument arrays (never a shell), run Python probes inside and outside the sandbox, find host
// processes, watch this process's event loop.
import { ROOT } from '../../harness/testnet.js';
import { execFile, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);


export { ROOT };
export const EBP = join(ROOT, 'bin', 'ebp');
export const IS_ROOT = process.getuid?.() === 0;
/** The raw system call numbers in PY_PRELUDE are x86_64's. */
export const X64 = process.arch === 'x64';
export const HOST_PYTHON = '/usr/bin/python3';

/** `ebp setup` once per test file when root (idempotent); the sandboxes then run as ebp-sandbox. */
export async function setupOnce(): Promise<void> {
  if (IS_ROOT) await execFileAsync(process.execPath, [EBP, 'setup']);
}

/** The host uid/gid sandboxes run as: ebp-sandbox when we are root, ourselves otherwise. */
export function sandboxHostUser(): { uid: number; gid: number } {
  if (!IS_ROOT) return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === 'ebp-sandbox') return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error('user ebp-sandbox missing: `ebp setup` did not run');
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface RunOptions {
  /** The whole environment of ebp (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Written to stdin, then closed; without it stdin is /dev/null. */
  readonly input?: string | Buffer;
  /** Extra stdio slots after stderr ('pipe' each): descriptors 3, 4, ... of ebp. */
  readonly extraPipes?: number;
  /** Safety net: SIGKILL after this long (default 50 s). */
  readonly killAfterMs?: number;
}

export interface Started {
  readonly child: ChildProcess;
  /** Resolves with the first stdout match of `pattern` (rejects if the process ends first). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  readonly done: Promise<RunResult>;
  stdout(): string;
  stderr(): string;
}

function start(program: string, args: readonly string[], options: RunOptions = {}): Started {
  const began = performance.now();
  const stdio: StdioOptions = [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'];
  for (let i = 0; i < (options.extraPipes ?? 0); i += 1) stdio.push('pipe');
  const child = spawn(program, args, { stdio, env: options.env ?? process.env });
  let out = '';
  let err = '';
  const waiters: { pattern: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    out += chunk;
    for (const waiter of [...waiters]) {
      const match = waiter.pattern.exec(out);
      if (match !== null) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match);
      }
    }
  });
  child.stderr?.on('data', (chunk: string) => (err += chunk));
  if (options.input !== undefined) {
    child.stdin?.on('error', () => undefined);
    if (options.input !== '') child.stdin?.write(options.input);
  }
  const killer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 50_000);
  const done = new Promise<RunResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout: out, stderr: err, ms: performance.now() - began });
    });
  });
  return {
    child,
    done,
    stdout: () => out,
    stderr: () => err,
    waitFor(pattern, timeoutMs = 20_000) {
      const now = pattern.exec(out);
      if (now !== null) return Promise.resolve(now);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`no ${String(pattern)} on stdout in ${timeoutMs} ms; stdout: ${out}; stderr: ${err}`));
        }, timeoutMs);
        waiters.push({ pattern, resolve: (m) => { clearTimeout(timer); resolve(m); } });
        void done.then((result) => {
          clearTimeout(timer);
          reject(new Error(`ebp ended (${String(result.code)}) before ${String(pattern)}; stdout: ${out}; stderr: ${err}`));
        });
      });
    },
  };
}

/** Starts `node bin/ebp ARGS` (stdin stays open when `input` is given, until ended). */
export function startEbp(args: readonly string[], options: RunOptions = {}): Started {
  return start(process.execPath, [EBP, ...args], options);
}

export function runEbp(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const started = startEbp(args, options);
  if (options.input !== undefined) started.child.stdin?.end();
  return started.done;
}

/** `ebp sandbox FLAGS -- COMMAND...` */
export function sandbox(command: readonly string[], flags: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
  return runEbp(['sandbox', ...flags, '--', ...command], options);
}

/**
 * Helpers every Python probe starts with. `sc(name, *args)` makes a raw system call and returns
 * "OK" or the errno name; `tryf(f)` does the same for a Python call; `out(k, v)` prints "k=v".
 */
export const PY_PRELUDE = String.raw`
import ctypes, errno, os, socket, struct, sys, time
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
NR = dict(ioctl=16, kill=62, ptrace=101, syslog=103, iopl=172, ioperm=173, init_module=175,
          finit_module=313, kexec_load=246, add_key=248, request_key=249, keyctl=250, unshare=272,
          clone=56, clone3=435, mount=165, umount2=166, pivot_root=155, chroot=161,
          sethostname=170, perf_event_open=298, name_to_handle_at=303, open_by_handle_at=304,
          process_vm_readv=310, process_vm_writev=311, bpf=321, userfaultfd=323,
          io_uring_setup=425, open_tree=428, move_mount=429, fsopen=430, fsconfig=431,
          fsmount=432, fspick=433, setns=308, kcmp=312, msgget=68, shmget=29)
def ename(e):
    return errno.errorcode.get(e, str(e))
def _arg(a):
    return ctypes.c_long(a) if isinstance(a, int) else a
def sc(name, *args):
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(NR[name]), *[_arg(a) for a in args])
    return 'OK' if r >= 0 else ename(ctypes.get_errno())
def tryf(f):
    try:
        f()
        return 'OK'
    except OSError as e:
        return ename(e.errno)
def out(key, value):
    print(f'{key}={value}', flush=True)
def ioctl(fd, request):
    buf = ctypes.create_string_buffer(b'#', 256)    # room for a struct termios (TCGETS)
    ctypes.set_errno(0)
    r = _libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(request), buf)
    return 'OK' if r >= 0 else ename(ctypes.get_errno())
def fork_call(name, *args):
    """A call that may create a process (clone): the child leaves at once."""
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(NR[name]), *[_arg(a) for a in args])
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
        return 'OK'
    return ename(ctypes.get_errno())
def connect(family, address, timeout=3):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(address)
        return 'OK'
    except socket.timeout:
        return 'TIMEOUT'
    except OSError as e:
        return ename(e.errno)
    finally:
        s.close()
def abstract(name):
    """Node pads abstract socket names to the full sun_path; so do we."""
    return (b'\0' + name.encode()).ljust(108, b'\0')
`;

/** Removes the common indentation of a template literal's lines. */
export function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indents = lines.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)?.[0].length ?? 0);
  const cut = Math.min(...indents);
  return lines.map((line) => line.slice(cut)).join('\n');
}

/** A Python probe: the prelude plus `code` (dedented). */
export function pyProgram(code: string): string {
  return `${PY_PRELUDE}\n${dedent(code)}\n`;
}

export interface PyOptions extends RunOptions {
  readonly flags?: readonly string[];
  readonly args?: readonly string[];
}

/** Runs a Python probe inside `ebp sandbox`. */
export function inside(code: string, options: PyOptions = {}): Promise<RunResult> {
  return sandbox(['python3', '-c', pyProgram(code), ...(options.args ?? [])], options.flags ?? [], options);
}

/**
 * The same probe on the host, outside any sandbox, as the uid sandboxes run as (via setpriv when
 * we are root): the oracle that shows a refusal inside comes from the sandbox, not from the host.
 */
export function outside(code: string, args: readonly string[] = [], options: { asRoot?: boolean } = {}): Promise<RunResult> {
  const python = [HOST_PYTHON, '-I', '-c', pyProgram(code), ...args];
  if (!IS_ROOT || options.asRoot === true) {
    const [program = HOST_PYTHON, ...rest] = python;
    return start(program, rest).done;
  }
  const { uid, gid } = sandboxHostUser();
  return start('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...python]).done;
}

/** Runs a host program as the sandbox uid (no sandbox): an oracle for CLI probes. */
export function outsideCommand(command: readonly string[]): Promise<RunResult> {
  if (!IS_ROOT) {
    const [program = 'false', ...rest] = command;
    return start(program, rest).done;
  }
  const { uid, gid } = sandboxHostUser();
  return start('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...command]).done;
}

/** "key=value" lines of a probe's output. Later lines win. */
export function kv(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) result[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return result;
}

/** Fails with everything ebp printed when the probe did not exit 0. */
export function probeOk(result: RunResult): Record<string, string> {
  if (result.code !== 0) {
    throw new Error(`probe exited ${String(result.code)} (signal ${String(result.signal)})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return kv(result.stdout);
}

export interface HostProcess {
  readonly pid: number;
  readonly uid: number;
  readonly argv: readonly string[];
  readonly state: string;
}

/** Every live (non-zombie) host process, read from /proc. */
export function hostProcesses(): HostProcess[] {
  const list: HostProcess[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
      const state = /^State:\s+(\S)/m.exec(status)?.[1] ?? '?';
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter((word) => word !== '');
      if (state !== 'Z') list.push({ pid: Number(name), uid, argv, state });
    } catch {
      // gone meanwhile
    }
  }
  return list;
}

/** Host processes of the sandbox uid whose argv is exactly `argv`. */
export function sandboxProcesses(argv: readonly string[]): HostProcess[] {
  const { uid } = sandboxHostUser();
  return hostProcesses().filter((p) => p.uid === uid && p.argv.length === argv.length && p.argv.every((word, i) => word === argv[i]));
}

/** Largest delay of a 50 ms timer while the watch runs: how responsive this process stayed. */
export function watchEventLoop(intervalMs = 50): { stop(): number } {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - intervalMs);
    last = now;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(worst, performance.now() - last - intervalMs);
    },
  };
}

/** slirp4netns and /dev/net/tun present: `--net` can work here. */
export function netUsable(): boolean {
  return ['/usr/bin/slirp4netns', '/bin/slirp4netns', '/usr/local/bin/slirp4netns'].some((p) => existsSync(p)) && existsSync('/dev/net/tun');
}

/** Tag for Python source in a template literal: backslashes stay as written (String.raw). */
export function py(strings: TemplateStringsArray, ...values: readonly (string | number)[]): string {
  return String.raw({ raw: strings.raw }, ...values);
}

export interface Captured {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end and captures it; a failure is a result (code -1: not run, or killed). */
export async function captured(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Captured> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args, { timeout: options.timeoutMs ?? 30_000, ...(options.env === undefined ? {} : { env: options.env }) });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}
