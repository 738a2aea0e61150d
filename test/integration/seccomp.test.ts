// The seccomp program as the kernel applies it: run python3 inside bwrap with and without
// `--seccomp`, make raw system calls with arguments that are wrong on purpose (bad fds, bad
// pointers, invalid flags), and compare errnos. An allowed call fails the kernel's own way
// (EBADF, EFAULT, EINVAL, ...); a refused one fails with the rule's errno. The run without the
// filter shows that each refusal really comes from the filter.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { seccompProgram } from '../../src/sandbox/seccomp.js';

type Args = readonly (number | bigint | '$args')[];
type Case = readonly [name: string, nr: number, args: Args];

// x86_64 system call numbers.
const NATIVE: readonly Case[] = [
  ['ioctl_tiocsti', 16, [0, 0x5412, 0]],
  ['ioctl_tiocsti_high_bits', 16, [0, 0x1_0000_5412n, 0]],
  ['ioctl_tioclinux', 16, [0, 0x541c, 0]],
  ['ioctl_tcgets_bad_fd', 16, [-1, 0x5401, 0]],
  ['keyctl', 250, [0xdead, 0, 0, 0, 0]],
  ['add_key', 248, [1, 1, 0, 0, 0]],
  ['mount', 165, [0, 1, 0, 0, 0]],
  ['clone_newuser', 56, [0x1000_0000 | 0x200, 0, 0, 0, 0]], // CLONE_NEWUSER|CLONE_FS: EINVAL if allowed
  ['clone_other_bad_flags', 56, [0x800, 0, 0, 0, 0]], // CLONE_SIGHAND without CLONE_VM: EINVAL
  ['clone3', 435, [0, 0]],
  ['fsopen', 430, [1, 0]],
  ['open_tree', 428, [-1, 1, 0]],
  ['move_mount', 429, [-1, 1, -1, 1, 0]],
  ['perf_event_open', 298, [1, 0, -1, -1, 0]],
  ['bpf', 321, [9999, 0, 0]],
  ['userfaultfd', 323, [0x8000_0000]],
  ['kexec_load', 246, [0, 0, 0, 0]],
  ['init_module', 175, [0, 0, 1]],
  ['iopl', 172, [4]],
  ['io_uring_setup', 425, [1, 1]],
  ['ptrace', 101, [2, 999_999, 0, 0]], // PTRACE_PEEKDATA on a pid that does not exist
  ['open_by_handle_at', 304, [-1, 1, 0]],
  ['process_vm_readv', 310, [1, 0, 0, 0, 0, 1]],
  ['syslog', 103, [10, 0, 0]],
  ['socket_packet', 41, [17, 3, 0]],
  ['socket_packet_high_bits', 41, [0x1_0000_0011n, 3, 0]],
  ['socket_vsock', 41, [40, 1, 0]],
  ['socket_bluetooth', 41, [31, 3, 0]],
  ['socket_unix', 41, [1, 1, 0]],
  ['socket_inet', 41, [2, 1, 0]],
  ['socket_inet6', 41, [10, 2, 0]],
  ['socket_netlink', 41, [16, 3, 0]],
  ['personality_query', 135, [0xffff_ffff]],
  ['personality_linux32', 135, [8]],
  ['personality_linux', 135, [0]],
  ['personality_no_aslr', 135, [0x0040000]],
  ['personality_reset', 135, [0]],
  ['unshare_bad_flags', 272, [1]],
];
// Runs after the thread and i386 checks: without the filter it may really enter a namespace.
const LAST: readonly Case[] = [['unshare_newuser', 272, [0x1000_0000]]];
// i386 numbers, entered through `int 0x80` from the 64-bit interpreter.
const I386: readonly Case[] = [
  ['mount', 21, [0, 1, 0]],
  ['clone3', 435, [0, 0, 0]],
  ['ioctl_tiocsti', 54, [0, 0x5412, 0]],
  ['socket_unix', 359, [1, 1, 0]],
  ['socket_packet', 359, [17, 3, 0]],
  ['socketcall_socket_unix', 102, [1, '$args', 0]], // SYS_SOCKET, args = {AF_UNIX, SOCK_STREAM, 0}
  ['personality_query', 136, [0xffff_ffff, 0, 0]],
  ['personality_no_aslr', 136, [0x0040000, 0, 0]],
];

const SCRIPT = String.raw`
import ctypes, errno, json, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
M64 = (1 << 64) - 1
NAMES = dict(errno.errorcode)
NAMES[errno.EOPNOTSUPP] = 'EOPNOTSUPP'  # not its alias ENOTSUP

def name(ret, err):
    return 'OK' if ret >= 0 else NAMES.get(err, str(err))

def native(nr, args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a & M64) for a in args])
    return name(ret, ctypes.get_errno())

def thread():
    box = []
    try:
        t = threading.Thread(target=lambda: box.append(1))
        t.start()
        t.join()
    except Exception as e:
        return 'FAILED ' + repr(e)
    return 'OK' if box else 'FAILED'

def i386(cases):
    # One RWX page below 4 GiB (MAP_32BIT): i386 calls take 32-bit pointers.
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    page = libc.mmap(None, 4096, 7, 0x22 | 0x40, -1, 0)
    if page is None or page == M64:
        return {'unavailable': 'mmap'}
    data = page + 2048
    ctypes.memmove(data, (1).to_bytes(4, 'little') + (1).to_bytes(4, 'little') + (0).to_bytes(4, 'little'), 12)
    fn = ctypes.CFUNCTYPE(ctypes.c_int)(page)
    out = {}
    for case, nr, args in cases:
        a, b, c = [data if x == '$args' else x & 0xffffffff for x in args]
        # push rbx; mov eax, nr; mov ebx, a; mov ecx, b; mov edx, c; int 0x80; pop rbx; ret
        code = b'\x53\xb8' + nr.to_bytes(4, 'little') + b'\xbb' + a.to_bytes(4, 'little') + \
            b'\xb9' + b.to_bytes(4, 'little') + b'\xba' + c.to_bytes(4, 'little') + b'\xcd\x80\x5b\xc3'
        ctypes.memmove(page, code, len(code))
        ret = fn()
        out[case] = name(ret, -ret)
    return out

def i386_in_child(cases):
    # A kernel without ia32 emulation answers int 0x80 with SIGSEGV: keep that in a child.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.write(w, json.dumps(i386(cases)).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b''
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {'unavailable': 'signal %d' % os.WTERMSIG(status)}
    return json.loads(data)

spec = json.loads(sys.argv[1])
results = {}
for case, nr, args in spec['native']:
    results[case] = native(nr, args)
results['thread'] = thread()
for case, value in i386_in_child(spec['i386']).items():
    results['i386.' + case] = value
for case, nr, args in spec['last']:
    results[case] = native(nr, args)
print(json.dumps(results))
`;

const BWRAP = '/usr/bin/bwrap';
const PYTHON = '/usr/bin/python3';

function toJson(cases: readonly Case[]): unknown[] {
  return cases.map(([name, nr, args]) => [name, nr, args.map((arg) => (typeof arg === 'bigint' ? Number(arg) : arg))]);
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `argv` in a minimal bwrap sandbox; never as root with a user namespace. */
function sandbox(argv: readonly string[], program?: Buffer): Promise<Run> {
  const bwrapArgs = [
    '--unshare-all', '--die-with-parent',
    '--ro-bind', '/usr', '/usr',
    '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/bin', '/bin',
    '--proc', '/proc', '--dev', '/dev',
    ...(program === undefined ? [] : ['--seccomp', '3']),
    '--', ...argv,
  ];
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  return new Promise((resolve, reject) => {
    const child = spawn(BWRAP, bwrapArgs, {
      cwd: '/',
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
      stdio: ['ignore', 'pipe', 'pipe', program === undefined ? 'ignore' : 'pipe'],
      ...asNobody,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => { resolve({ code, stdout, stderr }); });
    if (program !== undefined) {
      // Node's extra 'pipe' is a socketpair; bwrap reads the program from fd 3 until EOF.
      const fd3 = child.stdio[3];
      if (!(fd3 instanceof Writable)) {
        reject(new Error('no writable fd 3'));
        return;
      }
      fd3.on('error', reject);
      fd3.end(program);
    }
  });
}

async function oracle(program?: Buffer): Promise<Record<string, string>> {
  const spec = JSON.stringify({ native: toJson(NATIVE), i386: toJson(I386), last: toJson(LAST) });
  const run = await sandbox(['python3', '-c', SCRIPT, spec], program);
  assert.equal(run.code, 0, `sandboxed python failed (${String(run.code)}): ${run.stderr}`);
  const lastLine = run.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(lastLine) as Record<string, string>;
}

async function skipReason(): Promise<string | false> {
  if (process.platform !== 'linux' || process.arch !== 'x64') return 'system call numbers are x86_64 ones';
  for (const file of [BWRAP, PYTHON]) if (!fs.existsSync(file)) return `${file} not installed`;
  const probe = await sandbox(['true']);
  return probe.code === 0 ? false : `bwrap cannot run here: ${probe.stderr.trim()}`;
}

const skip = await skipReason();

// errno expected under the filter, and without it: an exact errno where the kernel's answer is
// stable across configurations, DIFFERENT where only "not the filter's errno" is, or nothing
// where the kernel may refuse the same way (EPERM for missing capabilities).
const DIFFERENT = 'different';
const EXPECT: Readonly<Record<string, readonly [filtered: string, unfiltered?: string]>> = {
  ioctl_tiocsti: ['EPERM', 'ENOTTY'],
  ioctl_tiocsti_high_bits: ['EPERM', 'ENOTTY'],
  ioctl_tioclinux: ['EPERM', 'ENOTTY'],
  ioctl_tcgets_bad_fd: ['EBADF', 'EBADF'],
  keyctl: ['EPERM', 'EOPNOTSUPP'],
  add_key: ['EPERM', 'EFAULT'],
  mount: ['EPERM', 'EFAULT'],
  clone_newuser: ['EPERM', 'EINVAL'],
  clone_other_bad_flags: ['EINVAL', 'EINVAL'],
  clone3: ['ENOSYS', 'EINVAL'],
  fsopen: ['ENOSYS', DIFFERENT],
  open_tree: ['ENOSYS', DIFFERENT],
  move_mount: ['ENOSYS', DIFFERENT],
  perf_event_open: ['EPERM', DIFFERENT], // EFAULT or EACCES
  bpf: ['EPERM'],
  userfaultfd: ['EPERM'],
  kexec_load: ['EPERM'],
  init_module: ['EPERM'],
  iopl: ['EPERM', DIFFERENT], // EINVAL, or ENOSYS without CONFIG_X86_IOPL_IOPERM
  io_uring_setup: ['EPERM'],
  ptrace: ['EPERM', 'ESRCH'],
  open_by_handle_at: ['EPERM'],
  process_vm_readv: ['EPERM', DIFFERENT],
  syslog: ['EPERM'],
  socket_packet: ['EAFNOSUPPORT', 'EPERM'],
  socket_packet_high_bits: ['EAFNOSUPPORT', 'EPERM'],
  socket_vsock: ['EAFNOSUPPORT'],
  socket_bluetooth: ['EAFNOSUPPORT'],
  socket_unix: ['OK', 'OK'],
  socket_inet: ['OK', 'OK'],
  socket_netlink: ['OK', 'OK'],
  personality_query: ['OK', 'OK'],
  personality_linux32: ['OK', 'OK'],
  personality_linux: ['OK', 'OK'],
  personality_no_aslr: ['EPERM', 'OK'],
  personality_reset: ['OK', 'OK'],
  unshare_bad_flags: ['EPERM', 'EINVAL'],
  unshare_newuser: ['EPERM'],
  thread: ['OK', 'OK'], // pthread_create falls back from clone3 to clone
};
const EXPECT_I386: Readonly<Record<string, readonly [filtered: string, unfiltered?: string]>> = {
  mount: ['EPERM', 'EFAULT'],
  clone3: ['ENOSYS', 'EINVAL'],
  ioctl_tiocsti: ['EPERM', 'ENOTTY'],
  socket_unix: ['OK', 'OK'],
  socket_packet: ['EAFNOSUPPORT', 'EPERM'],
  // libseccomp cannot see socketcall's family (it is in memory), so it refuses them all.
  socketcall_socket_unix: ['EAFNOSUPPORT', 'OK'],
  personality_query: ['OK', 'OK'],
  personality_no_aslr: ['EPERM', 'OK'],
};

void test('real errnos under the filter, and without it', { skip }, async (t) => {
  const [filtered, unfiltered] = await Promise.all([oracle(seccompProgram()), oracle()]);
  t.diagnostic(`filtered: ${JSON.stringify(filtered)}`);
  t.diagnostic(`unfiltered: ${JSON.stringify(unfiltered)}`);

  for (const [name, [want, control]] of Object.entries(EXPECT)) {
    assert.equal(filtered[name], want, `${name} under the filter`);
    // A refusal the kernel would have produced anyway proves nothing about the filter.
    if (control === DIFFERENT) assert.notEqual(unfiltered[name], want, `${name} without the filter`);
    else if (control !== undefined) assert.equal(unfiltered[name], control, `${name} without the filter`);
  }
  // IPv6 may be disabled on the host; then the kernel itself says EAFNOSUPPORT. Either way the
  // filter must not change the answer.
  assert.equal(filtered.socket_inet6, unfiltered.socket_inet6, 'AF_INET6 is left to the kernel');

  if (filtered['i386.unavailable'] !== undefined || unfiltered['i386.unavailable'] !== undefined) {
    t.diagnostic(`i386 checks skipped: ${filtered['i386.unavailable'] ?? unfiltered['i386.unavailable'] ?? ''}`);
    return;
  }
  for (const [name, [want, control]] of Object.entries(EXPECT_I386)) {
    assert.equal(filtered[`i386.${name}`], want, `i386 ${name} under the filter`);
    if (control !== undefined) assert.equal(unfiltered[`i386.${name}`], control, `i386 ${name} without the filter`);
  }
});

void test('allowPtrace lifts ptrace and process_vm_readv only', { skip }, async () => {
  const results = await oracle(seccompProgram({ allowPtrace: true }));
  assert.equal(results.ptrace, 'ESRCH');
  assert.equal(results.process_vm_readv, 'EINVAL');
  assert.equal(results.mount, 'EPERM');
  assert.equal(results.clone3, 'ENOSYS');
  assert.equal(results.ioctl_tiocsti, 'EPERM');
});
