import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SECCOMP_RULES, seccompProgram, seccompSupport } from '../../src/sandbox/seccomp.js';

const ALLOW = 0x7fff_0000;
const errno = (e: number): number => 0x0005_0000 | e;
const EPERM = errno(1);
const ENOSYS = errno(38);
const EAFNOSUPPORT = errno(97);

const AUDIT_ARCH_X86_64 = 0xc000_003e;
const AUDIT_ARCH_I386 = 0x4000_0003;
const X32_BIT = 0x4000_0000;

/**
 * A classic-BPF interpreter for the subset libseccomp emits, run against a struct seccomp_data
 * { int nr; u32 arch; u64 ip; u64 args[6] } (little-endian). Lets the unit test check the
 * compiled program's decisions, per ABI, without a kernel.
 */
function run(program: Buffer, arch: number, nr: number, args: readonly bigint[] = []): number {
  return execute(program, arch, nr, args).action;
}

/** The action, and how many instructions the program ran to reach it. */
function execute(program: Buffer, arch: number, nr: number, args: readonly bigint[] = []): { action: number; steps: number } {
  const data = Buffer.alloc(64);
  data.writeUInt32LE(nr >>> 0, 0);
  data.writeUInt32LE(arch >>> 0, 4);
  args.forEach((value, i) => { data.writeBigUInt64LE(BigInt.asUintN(64, value), 16 + 8 * i); });
  let a = 0;
  let x = 0;
  const mem = new Uint32Array(16);
  for (let pc = 0, steps = 0; steps < 10_000; steps++) {
    const at = pc * 8;
    assert.ok(at + 8 <= program.length, 'BPF program ran off its end');
    const code = program.readUInt16LE(at);
    const jt = program.readUInt8(at + 2);
    const jf = program.readUInt8(at + 3);
    const k = program.readUInt32LE(at + 4);
    pc++;
    const jump = (taken: boolean): void => { pc += taken ? jt : jf; };
    switch (code) {
      case 0x20: a = data.readUInt32LE(k); break; // ld [k]
      case 0x00: a = k; break; // ld #k
      case 0x01: x = k; break; // ldx #k
      case 0x60: a = mem[k] ?? 0; break; // ld M[k]
      case 0x61: x = mem[k] ?? 0; break; // ldx M[k]
      case 0x02: mem[k] = a; break; // st M[k]
      case 0x03: mem[k] = x; break; // stx M[k]
      case 0x54: a = (a & k) >>> 0; break; // and #k
      case 0x5c: a = (a & x) >>> 0; break; // and x
      case 0x07: x = a; break; // tax
      case 0x87: a = x; break; // txa
      case 0x05: pc += k; break; // ja
      case 0x15: jump(a === k); break; // jeq #k
      case 0x25: jump(a > k); break; // jgt #k
      case 0x35: jump(a >= k); break; // jge #k
      case 0x45: jump((a & k) !== 0); break; // jset #k
      case 0x1d: jump(a === x); break; // jeq x
      case 0x2d: jump(a > x); break; // jgt x
      case 0x3d: jump(a >= x); break; // jge x
      case 0x06: return { action: k, steps: steps + 1 }; // ret #k
      case 0x16: return { action: a, steps: steps + 1 }; // ret a
      default: assert.fail(`unexpected BPF opcode 0x${code.toString(16)} at ${pc - 1}`);
    }
  }
  return assert.fail('BPF program did not terminate');
}

// x86_64 and i386 numbers of the calls exercised below.
const X64 = { ioctl: 16, socket: 41, clone: 56, ptrace: 101, personality: 135, mount: 165, keyctl: 250, clone3: 435, fsopen: 430, mount_setattr: 442, read: 0, process_vm_readv: 310 };
const I386 = { ioctl: 54, socketcall: 102, socket: 359, clone: 120, personality: 136, mount: 21, stime: 25, clock_settime64: 404, clone3: 435 };

const onX64 = process.platform === 'linux' && process.arch === 'x64';

void test('the program is whole sock_filter entries and cached per options', () => {
  const program = seccompProgram();
  assert.ok(program.length > 0);
  assert.equal(program.length % 8, 0);
  assert.ok(program.length / 8 <= 4096, 'within the kernel limit of 4096 instructions');
  assert.equal(seccompProgram(), program, 'same Buffer instance');
  assert.equal(seccompProgram({}), program);
  assert.equal(seccompProgram({ allowPtrace: false }), program);
  const withPtrace = seccompProgram({ allowPtrace: true });
  assert.notDeepEqual(withPtrace, program);
  assert.equal(seccompProgram({ allowPtrace: true }), withPtrace);
});

void test('seccompSupport reports the library', () => {
  const support = seccompSupport();
  assert.ok(support.ok, support.ok ? '' : `${support.reason} (${support.fix})`);
  assert.match(support.version, /^\d+\.\d+\.\d+$/);
  assert.ok(support.arch.length > 0);
});

void test('SECCOMP_RULES names the key system calls', () => {
  const byName = new Map<string, string[]>();
  for (const rule of SECCOMP_RULES) byName.set(rule.syscall, [...(byName.get(rule.syscall) ?? []), rule.action]);
  const expect: Record<string, string> = {
    clone3: 'ENOSYS', open_tree: 'ENOSYS', move_mount: 'ENOSYS', fsopen: 'ENOSYS', fsconfig: 'ENOSYS',
    fsmount: 'ENOSYS', fspick: 'ENOSYS', mount_setattr: 'ENOSYS', socket: 'EAFNOSUPPORT',
  };
  for (const name of [
    'syslog', 'keyctl', 'add_key', 'request_key', 'unshare', 'setns', 'mount', 'umount2', 'pivot_root', 'chroot',
    'clone', 'ioctl', 'perf_event_open', 'ptrace', 'personality', 'kexec_load', 'kexec_file_load', 'init_module',
    'finit_module', 'bpf', 'userfaultfd', 'iopl', 'ioperm', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
    'open_by_handle_at', 'name_to_handle_at', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'vmsplice',
    'swapon', 'reboot', 'settimeofday', 'clock_settime', 'adjtimex', 'fanotify_init', 'sethostname', 'setdomainname',
    'modify_ldt', 'uselib', 'acct', 'quotactl', 'mbind', 'migrate_pages', 'move_pages',
    ...Object.keys(expect),
  ]) {
    assert.deepEqual(byName.get(name)?.[0], expect[name] ?? 'EPERM', name);
  }
  assert.equal(byName.get('ioctl')?.length, 2, 'TIOCSTI and TIOCLINUX');
  assert.ok(SECCOMP_RULES.every((rule) => rule.match === undefined || rule.condition !== undefined));
  for (const name of ['mknod', 'mknodat', 'read', 'execve', 'clone', 'socket']) {
    assert.ok(SECCOMP_RULES.every((rule) => rule.syscall !== name || rule.match !== undefined), `${name} not refused outright`);
  }
});

void test('the program is a search tree over the call numbers: a call is decided in a few instructions', { skip: !onX64 && 'needs an x86_64 host' }, () => {
  // Laid out as one comparison after another, an allowed call passes every rule first (153
  // instructions on x86_64). The kernel runs the filter for each call number when a sandbox
  // loads it (seccomp's action cache), so the layout is part of every sandbox's set-up.
  const p = seccompProgram();
  const steps = Array.from({ length: 460 }, (_, nr) => execute(p, AUDIT_ARCH_X86_64, nr).steps).sort((x, y) => x - y);
  const p90 = steps[Math.floor(steps.length * 0.9)] ?? Infinity;
  assert.ok(p90 <= 16, `nine calls in ten are decided within ${p90} instructions`);
  for (const nr of [X64.read, X64.mount, X64.clone3]) assert.ok(execute(p, AUDIT_ARCH_X86_64, nr).steps <= 16, `call ${nr}`);
});

void test('x86_64 decisions', { skip: !onX64 && 'needs an x86_64 host' }, () => {
  const p = seccompProgram();
  const call = (nr: number, ...args: bigint[]): number => run(p, AUDIT_ARCH_X86_64, nr, args);
  assert.equal(call(X64.read), ALLOW);
  assert.equal(call(X64.mount), EPERM);
  assert.equal(call(X64.keyctl), EPERM);
  assert.equal(call(X64.clone3), ENOSYS);
  assert.equal(call(X64.fsopen), ENOSYS);
  assert.equal(call(X64.mount_setattr), ENOSYS);
  assert.equal(call(X64.ptrace), EPERM);
  assert.equal(call(X64.process_vm_readv), EPERM);
  assert.equal(run(seccompProgram({ allowPtrace: true }), AUDIT_ARCH_X86_64, X64.ptrace), ALLOW);
  assert.equal(run(seccompProgram({ allowPtrace: true }), AUDIT_ARCH_X86_64, X64.process_vm_readv), ALLOW);
  assert.equal(run(seccompProgram({ allowPtrace: true }), AUDIT_ARCH_X86_64, X64.mount), EPERM);
  // clone: only CLONE_NEWUSER.
  assert.equal(call(X64.clone, 0x1200011n), ALLOW); // fork()'s flags
  assert.equal(call(X64.clone, 0x10000000n), EPERM);
  assert.equal(call(X64.clone, 0x10000000n | 0x1200011n), EPERM);
  // ioctl: TIOCSTI/TIOCLINUX on the low 32 bits.
  assert.equal(call(X64.ioctl, 0n, 0x5401n), ALLOW);
  assert.equal(call(X64.ioctl, 0n, 0x5412n), EPERM);
  assert.equal(call(X64.ioctl, 0n, 0x1_0000_5412n), EPERM);
  assert.equal(call(X64.ioctl, 0n, 0xffff_ffff_0000_541cn), EPERM);
  // socket: exactly AF_UNIX, AF_INET, AF_INET6, AF_NETLINK.
  const allowedFamilies = new Set([1, 2, 10, 16]);
  for (let family = 0; family < 64; family++) {
    assert.equal(call(X64.socket, BigInt(family)), allowedFamilies.has(family) ? ALLOW : EAFNOSUPPORT, `family ${family}`);
  }
  for (const family of [0x7fff_ffffn, 0xffff_ffffn, -1n, 0x1_0000_0011n, 0x1_0000_0001n]) {
    assert.equal(call(X64.socket, family), EAFNOSUPPORT, `family ${family}`);
  }
  // personality: 0, PER_LINUX32 and the query; compared on the low 32 bits like the kernel, so
  // personality(-1) is the query and 0x1_00000000 is PER_LINUX.
  const personas: [bigint, number][] = [
    [0n, ALLOW], [8n, ALLOW], [0xffff_ffffn, ALLOW], [0x1_0000_0000n, ALLOW],
    [1n, EPERM], [7n, EPERM], [9n, EPERM], [0x0040000n, EPERM], [0x0400000n, EPERM], [0x0040008n, EPERM],
    [0x8000_0000n, EPERM], [0xffff_fffen, EPERM], [0x7fff_ffffn, EPERM], [0x1_0000_0040n, EPERM], [-1n, ALLOW],
  ];
  for (const [persona, want] of personas) assert.equal(call(X64.personality, persona), want, `persona 0x${persona.toString(16)}`);
  for (let bit = 0; bit < 32; bit++) {
    const persona = 1n << BigInt(bit);
    assert.equal(call(X64.personality, persona), bit === 3 ? ALLOW : EPERM, `persona bit ${bit}`);
  }
});

void test('i386 and x32 compat ABIs get the same policy', { skip: !onX64 && 'needs an x86_64 host' }, () => {
  const p = seccompProgram();
  const i386 = (nr: number, ...args: bigint[]): number => run(p, AUDIT_ARCH_I386, nr, args);
  assert.equal(i386(3), ALLOW); // read
  assert.equal(i386(I386.mount), EPERM);
  assert.equal(i386(I386.stime), EPERM);
  assert.equal(i386(I386.clock_settime64), EPERM);
  assert.equal(i386(I386.clone3), ENOSYS);
  assert.equal(i386(I386.clone, 0x10000000n), EPERM);
  assert.equal(i386(I386.clone, 0x1200011n), ALLOW);
  assert.equal(i386(I386.ioctl, 0n, 0x5412n), EPERM);
  assert.equal(i386(I386.socket, 1n), ALLOW);
  assert.equal(i386(I386.socket, 17n), EAFNOSUPPORT);
  assert.equal(i386(I386.socketcall, 1n), EAFNOSUPPORT, 'socketcall(SYS_SOCKET) is refused whatever the family');
  assert.equal(i386(I386.socketcall, 3n), ALLOW, 'socketcall(SYS_CONNECT) is not');
  // The 32-bit personality rules must not have been truncated into "refuse everything".
  assert.equal(i386(I386.personality, 0n), ALLOW);
  assert.equal(i386(I386.personality, 8n), ALLOW);
  assert.equal(i386(I386.personality, 0xffff_ffffn), ALLOW);
  assert.equal(i386(I386.personality, 0x40000n), EPERM);

  const x32 = (nr: number, ...args: bigint[]): number => run(p, AUDIT_ARCH_X86_64, X32_BIT | nr, args);
  assert.equal(x32(X64.mount), EPERM);
  assert.equal(x32(X64.clone3), ENOSYS);
  assert.equal(x32(X64.socket, 2n), ALLOW);
  assert.equal(x32(X64.socket, 40n), EAFNOSUPPORT);
  assert.equal(x32(X64.personality, 0xffff_ffffn), ALLOW);
  assert.equal(x32(X64.personality, 0x40000n), EPERM);
  assert.equal(x32(514, 0n, 0x5412n), EPERM); // x32 ioctl

  assert.notEqual(run(p, 0x4000_0028, 0), ALLOW, 'an ABI outside the filter is not allowed');
});
