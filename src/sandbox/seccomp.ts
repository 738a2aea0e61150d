// The sandbox's seccomp filter: a denylist compiled to classic BPF by libseccomp (through koffi),
// handed to `bwrap --seccomp FD`. Default action ALLOW; the rules refuse the kernel interfaces an
// application has no business using and that have a record of privilege escalations: namespaces
// and mounts, keyrings, module/kexec loading, bpf, userfaultfd, io_uring, perf, ptrace, TTY input
// injection and exotic socket families. The list covers Flatpak's plus firejail's default extras.
//
// Refusals are errno returns, never kills, so well-behaved programs see an ordinary error and
// fall back (ENOSYS for clone3 and the new mount API means "not implemented here").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';
import { EbpError } from '../lib/errors.js';
import { SECCOMP_RULES, type SeccompAction, type SeccompOptions, type SeccompRule } from './seccomp-rules.js';

export { SECCOMP_RULES, type SeccompAction, type SeccompArgMatch, type SeccompOptions, type SeccompRule } from './seccomp-rules.js';


// ---------------------------------------------------------------------------------------------
// libseccomp through koffi

const SCMP_ACT_ALLOW = 0x7fff_0000;
const SCMP_ACT_ERRNO = 0x0005_0000;
const NR_SCMP_ERROR = -1;
const SCMP_CMP_GE = 5;
const SCMP_CMP_MASKED_EQ = 7;
/** libseccomp 2.5's filter attribute for how rules are laid out, and its binary-tree level. */
const SCMP_FLTATR_CTL_OPTIMIZE = 8;
const SCMP_OPTIMIZE_BINARY_TREE = 2;
const ERRNO: Readonly<Record<SeccompAction, number>> = {
  EPERM: os.constants.errno.EPERM,
  ENOSYS: os.constants.errno.ENOSYS,
  EAFNOSUPPORT: os.constants.errno.EAFNOSUPPORT,
};

/** SCMP_ARCH_* tokens (AUDIT_ARCH_* values) we name or add. */
const ARCH = {
  X86_64: 0xc000_003e,
  X86: 0x4000_0003,
  X32: 0x4000_003e,
  AARCH64: 0xc000_00b7,
  ARM: 0x4000_0028,
} as const;
const ARCH_NAMES: ReadonlyMap<number, string> = new Map([
  [ARCH.X86_64, 'x86_64'],
  [ARCH.X86, 'x86'],
  [ARCH.X32, 'x32'],
  [ARCH.AARCH64, 'aarch64'],
  [ARCH.ARM, 'arm'],
  [0xc000_00f3, 'riscv64'],
  [0xc000_0015, 'ppc64le'],
  [0x8000_0015, 'ppc64'],
  [0x8000_0016, 's390x'],
  [0x0000_0016, 's390'],
  [0xc000_0102, 'loongarch64'],
]);
/**
 * The 32-bit ABIs a native kernel also runs: without them in the filter, a compat syscall hits
 * the "bad arch" action and kills the process, and with them the same denylist applies there too
 * (an x86_64 program can always reach the i386 table through `int 0x80`).
 */
const COMPAT_ARCHES: ReadonlyMap<number, readonly number[]> = new Map([
  [ARCH.X86_64, [ARCH.X86, ARCH.X32]],
  [ARCH.AARCH64, [ARCH.ARM]],
]);
/** On s390/s390x clone takes (stack, flags): the clone rule would look at the wrong argument. */
const UNSUPPORTED_ARCHES: ReadonlySet<number> = new Set([0x8000_0016, 0x0000_0016]);

const MIN_VERSION = [2, 5, 0] as const;
const INSTALL_HINT = 'install libseccomp 2.5 or newer (Debian/Ubuntu: apt install libseccomp2)';

interface ScmpArgCmp {
  arg: number;
  op: number;
  datum_a: bigint;
  datum_b: bigint;
}

interface Libseccomp {
  readonly version: string;
  readonly versionTuple: readonly [number, number, number];
  readonly archNative: () => number;
  readonly init: (defAction: number) => bigint | null;
  readonly release: (ctx: bigint) => void;
  readonly archAdd: (ctx: bigint, arch: number) => number;
  readonly resolveName: (name: string) => number;
  readonly ruleAddArray: (ctx: bigint, action: number, syscall: number, count: number, args: ScmpArgCmp[]) => number;
  readonly exportBpf: (ctx: bigint, fd: number) => number;
  readonly attrSet: (ctx: bigint, attribute: number, value: number) => number;
}

function bind(lib: LibraryHandle): Libseccomp {
  // Anonymous koffi types: named ones are global and would clash with any other binding.
  const versionType = koffi.struct({ major: 'uint', minor: 'uint', micro: 'uint' });
  const argCmpType = koffi.struct({ arg: 'uint', op: 'int', datum_a: 'uint64_t', datum_b: 'uint64_t' });
  const seccompVersion = lib.func('seccomp_version', koffi.pointer(versionType), []);
  const raw = koffi.decode(seccompVersion(), versionType) as { major: number; minor: number; micro: number };
  const versionTuple = [raw.major, raw.minor, raw.micro] as const;
  return {
    version: versionTuple.join('.'),
    versionTuple,
    archNative: lib.func('seccomp_arch_native', 'uint32_t', []),
    init: lib.func('seccomp_init', 'void *', ['uint32_t']),
    release: lib.func('seccomp_release', 'void', ['void *']),
    archAdd: lib.func('seccomp_arch_add', 'int', ['void *', 'uint32_t']),
    resolveName: lib.func('seccomp_syscall_resolve_name', 'int', ['const char *']),
    // seccomp_rule_add is variadic; the _array form takes the comparisons as a C array.
    ruleAddArray: lib.func('seccomp_rule_add_array', 'int', [
      'void *',
      'uint32_t',
      'int',
      'unsigned int',
      koffi.pointer(argCmpType),
    ]),
    exportBpf: lib.func('seccomp_export_bpf', 'int', ['void *', 'int']),
    attrSet: lib.func('seccomp_attr_set', 'int', ['void *', 'int', 'uint32_t']),
  };
}

let libseccomp: Libseccomp | undefined;

function loadLibseccomp(): Libseccomp {
  if (libseccomp !== undefined) return libseccomp;
  let lib: LibraryHandle;
  try {
    lib = koffi.load('libseccomp.so.2');
  } catch (error) {
    throw new EbpError('SECCOMP_UNAVAILABLE', 'cannot load libseccomp.so.2', { cause: error, hint: INSTALL_HINT });
  }
  try {
    libseccomp = bind(lib);
  } catch (error) {
    // A missing symbol: a libseccomp far older than the 2.5 this module needs.
    throw new EbpError('SECCOMP_UNAVAILABLE', 'libseccomp.so.2 lacks a needed function', { cause: error, hint: INSTALL_HINT });
  }
  return libseccomp;
}

function versionAtLeast(version: readonly number[], minimum: readonly number[]): boolean {
  for (let i = 0; i < minimum.length; i++) {
    const have = version[i] ?? 0;
    const want = minimum[i] ?? 0;
    if (have !== want) return have > want;
  }
  return true;
}

function errnoName(rc: number): string {
  const entry = Object.entries(os.constants.errno).find(([, value]) => value === -rc);
  return entry === undefined ? String(rc) : entry[0];
}

const U32 = 0xffff_ffffn;

/**
 * `none-of` as libseccomp rules. libseccomp 2.5 takes one comparison per argument per rule, so
 * "not in {a, b, c}" becomes the gaps between the allowed values, each split into aligned
 * power-of-two blocks matched by MASKED_EQ, plus GE for the gap above the largest value.
 *
 * Only the low 32 bits are compared: socket's domain and personality's persona are C ints in the
 * kernel, which ignores the upper half, and libseccomp silently truncates 64-bit data on 32-bit
 * ABIs (a GE 2^32 rule would become GE 0 there). Values with upper bits set therefore behave like
 * their low half, except that GE (a 64-bit compare on 64-bit ABIs) refuses them: safe side.
 */
function noneOfComparisons(arg: number, allowed: readonly number[]): ScmpArgCmp[] {
  const values = [...new Set(allowed.map((value) => BigInt(value) & U32))].sort((a, b) => (a < b ? -1 : 1));
  const out: ScmpArgCmp[] = [];
  let next = 0n;
  for (const value of values) {
    for (let lo = next; lo < value; ) {
      let size = 1n;
      while (lo % (size * 2n) === 0n && lo + size * 2n - 1n < value) size *= 2n;
      out.push({ arg, op: SCMP_CMP_MASKED_EQ, datum_a: U32 & ~(size - 1n), datum_b: lo });
      lo += size;
    }
    next = value + 1n;
  }
  if (next <= U32) out.push({ arg, op: SCMP_CMP_GE, datum_a: next, datum_b: 0n });
  return out;
}

/** Each inner array is one libseccomp rule (its comparisons are ANDed); an empty one matches always. */
function comparisonsFor(rule: SeccompRule): ScmpArgCmp[][] {
  const match = rule.match;
  if (match === undefined) return [[]];
  switch (match.kind) {
    case 'masked-eq':
      return [[{ arg: match.arg, op: SCMP_CMP_MASKED_EQ, datum_a: BigInt(match.mask), datum_b: BigInt(match.value) }]];
    case 'none-of':
      return noneOfComparisons(match.arg, match.allowed).map((comparison) => [comparison]);
  }
}

/** memfd_create from libc, or undefined when unavailable (old kernel or a libc without it). */
let memfdCreate: ((name: string, flags: number) => number) | null | undefined;

function openScratchFd(): { fd: number; cleanup: () => void } {
  if (memfdCreate === undefined) {
    try {
      memfdCreate = koffi.load('libc.so.6').func('memfd_create', 'int', ['const char *', 'unsigned int']);
    } catch {
      memfdCreate = null;
    }
  }
  const MFD_CLOEXEC = 1;
  const memfd = memfdCreate === null ? -1 : memfdCreate('ebp-seccomp', MFD_CLOEXEC);
  if (memfd >= 0) return { fd: memfd, cleanup: () => { fs.closeSync(memfd); } };
  // Fallback: a private file in a fresh 0700 directory, unlinked as soon as it is open.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebp-seccomp-'));
  const file = path.join(dir, 'filter.bpf');
  const fd = fs.openSync(file, 'wx+', 0o600);
  fs.unlinkSync(file);
  fs.rmdirSync(dir);
  return { fd, cleanup: () => { fs.closeSync(fd); } };
}

function readWhole(fd: number): Buffer {
  const size = fs.fstatSync(fd).size;
  const buffer = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const read = fs.readSync(fd, buffer, done, size - done, done);
    if (read === 0) break;
    done += read;
  }
  return buffer.subarray(0, done);
}

function fail(message: string, hint = INSTALL_HINT): EbpError {
  return new EbpError('SECCOMP_UNAVAILABLE', message, { hint });
}

function buildProgram(lib: Libseccomp, allowPtrace: boolean): Buffer {
  if (!versionAtLeast(lib.versionTuple, MIN_VERSION)) {
    throw fail(`libseccomp ${lib.version} is too old: the filter needs ${MIN_VERSION.join('.')} or newer`);
  }
  const native = lib.archNative();
  if (UNSUPPORTED_ARCHES.has(native)) {
    throw fail(`seccomp policy not available on ${ARCH_NAMES.get(native) ?? 'this architecture'}`, 'run on x86_64 or aarch64');
  }
  const ctx = lib.init(SCMP_ACT_ALLOW);
  if (ctx === null) throw fail('seccomp_init failed');
  try {
    // A binary tree over the system call numbers instead of one comparison after another: the
    // kernel runs the filter for every syscall number when a sandbox loads it (its action cache),
    // and for each call whose action depends on its arguments. Measured with bwrap's two loads
    // per sandbox: 0.12 ms each instead of 0.28 ms.
    const optimized = lib.attrSet(ctx, SCMP_FLTATR_CTL_OPTIMIZE, SCMP_OPTIMIZE_BINARY_TREE);
    if (optimized < 0) throw fail(`seccomp_attr_set(SCMP_FLTATR_CTL_OPTIMIZE) failed: ${errnoName(optimized)}`);
    for (const arch of COMPAT_ARCHES.get(native) ?? []) {
      const rc = lib.archAdd(ctx, arch);
      if (rc < 0 && -rc !== os.constants.errno.EEXIST) {
        throw fail(`seccomp_arch_add(${ARCH_NAMES.get(arch) ?? arch}) failed: ${errnoName(rc)}`);
      }
    }
    for (const rule of SECCOMP_RULES) {
      if (rule.liftedBy === 'allowPtrace' && allowPtrace) continue;
      // The native number, or libseccomp's pseudo number when the call exists only on another ABI
      // of the filter (stime on i386): libseccomp maps each rule onto every arch that has the
      // call and leaves the others out. __NR_SCMP_ERROR means libseccomp does not know the name.
      const nr = lib.resolveName(rule.syscall);
      if (nr === NR_SCMP_ERROR) {
        if (rule.optional === true) continue;
        throw fail(`libseccomp ${lib.version} does not know the system call ${rule.syscall}`);
      }
      for (const comparisons of comparisonsFor(rule)) {
        const rc = lib.ruleAddArray(ctx, SCMP_ACT_ERRNO | ERRNO[rule.action], nr, comparisons.length, comparisons);
        if (rc < 0) throw fail(`seccomp rule for ${rule.syscall} rejected: ${errnoName(rc)}`);
      }
    }
    const scratch = openScratchFd();
    try {
      const rc = lib.exportBpf(ctx, scratch.fd);
      if (rc < 0) throw fail(`seccomp_export_bpf failed: ${errnoName(rc)}`);
      const program = readWhole(scratch.fd);
      if (program.length === 0 || program.length % 8 !== 0) {
        throw fail(`seccomp_export_bpf wrote ${program.length} bytes, not whole struct sock_filter entries`);
      }
      return program;
    } finally {
      scratch.cleanup();
    }
  } finally {
    lib.release(ctx);
  }
}

const programs = new Map<boolean, Buffer>();

/**
 * The BPF program bytes (struct sock_filter[], what `bwrap --seccomp FD` reads). Cached per
 * options: callers share the Buffer and must not modify it. Throws
 * EbpError('SECCOMP_UNAVAILABLE') when libseccomp can't be loaded or can't express the policy.
 */
export function seccompProgram(options: SeccompOptions = {}): Buffer {
  const allowPtrace = options.allowPtrace ?? false;
  let program = programs.get(allowPtrace);
  if (program === undefined) {
    program = buildProgram(loadLibseccomp(), allowPtrace);
    programs.set(allowPtrace, program);
  }
  return program;
}

/** For `ebp doctor`: libseccomp version and native arch, or why it is unusable. */
export function seccompSupport(): { ok: true; version: string; arch: string } | { ok: false; reason: string; fix: string } {
  try {
    const lib = loadLibseccomp();
    seccompProgram();
    const native = lib.archNative();
    return { ok: true, version: lib.version, arch: ARCH_NAMES.get(native) ?? `0x${native.toString(16)}` };
  } catch (error) {
    if (error instanceof EbpError) return { ok: false, reason: error.message, fix: error.hint ?? INSTALL_HINT };
    return { ok: false, reason: error instanceof Error ? error.message : String(error), fix: INSTALL_HINT };
  }
}
