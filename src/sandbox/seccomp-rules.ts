// The sandbox's seccomp policy as data: which system calls are refused, with which errno, under
// which argument conditions. Pure (no FFI), so that the compiled program can be cached and checked
// without loading libseccomp; `seccomp.ts` compiles it.
export interface SeccompOptions {
  /** Let debuggers work inside the sandbox: lifts ptrace and process_vm_readv/writev. */
  readonly allowPtrace?: boolean;
}

export type SeccompAction = 'EPERM' | 'ENOSYS' | 'EAFNOSUPPORT';

/** How a rule looks at one argument (see noneOfComparisons for how none-of is compiled). */
export type SeccompArgMatch =
  /** Refuse when (arg & mask) === value. */
  | { readonly kind: 'masked-eq'; readonly arg: number; readonly mask: number; readonly value: number }
  /** Refuse unless the argument is one of `allowed`. */
  | { readonly kind: 'none-of'; readonly arg: number; readonly allowed: readonly number[] };

export interface SeccompRule {
  readonly syscall: string;
  readonly action: SeccompAction;
  /** The argument condition in words; absent when every call is refused. */
  readonly condition?: string;
  /** The machine form of `condition`. */
  readonly match?: SeccompArgMatch;
  /** The option that lifts this rule. */
  readonly liftedBy?: 'allowPtrace';
  /**
   * Obsolete, arch-specific or newer than libseccomp 2.5.0: skipped when the installed libseccomp
   * does not know the name. Any other unknown name is an error rather than a silently weaker filter.
   */
  readonly optional?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Policy

const CLONE_NEWUSER = 0x1000_0000;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;
const PER_LINUX = 0x0000;
const PER_LINUX32 = 0x0008;
const PERSONALITY_QUERY = 0xffff_ffff;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;

function refuse(action: SeccompAction, names: readonly string[], extra: Partial<SeccompRule> = {}): SeccompRule[] {
  return names.map((syscall) => ({ syscall, action, ...extra }));
}

export const SECCOMP_RULES: readonly SeccompRule[] = Object.freeze([
  // Kernel log, process accounting and quotas describe or change the host, not the sandbox.
  ...refuse('EPERM', ['syslog', 'acct', 'quotactl']),
  ...refuse('EPERM', ['quotactl_fd'], { optional: true }),
  // The kernel keyring is not namespaced: keys leak between sandboxes and the host user.
  ...refuse('EPERM', ['add_key', 'keyctl', 'request_key']),
  // NUMA placement calls: no use in an app, a recurring source of memory-management bugs.
  ...refuse('EPERM', ['move_pages', 'mbind', 'get_mempolicy', 'set_mempolicy', 'migrate_pages']),
  // No new namespaces, no remounting: the filesystem view bwrap built is final. A nested user
  // namespace would hand the app CAP_SYS_ADMIN over fresh namespaces, the usual first step of
  // kernel exploits.
  ...refuse('EPERM', ['unshare', 'setns', 'mount', 'umount', 'umount2', 'pivot_root', 'chroot']),
  {
    syscall: 'clone',
    action: 'EPERM',
    condition: 'flags include CLONE_NEWUSER',
    match: { kind: 'masked-eq', arg: 0, mask: CLONE_NEWUSER, value: CLONE_NEWUSER },
  },
  // Seccomp cannot read clone3's flags (they sit in a struct in memory), so clone3 must go;
  // ENOSYS makes glibc fall back to clone(), whose flags the rule above does inspect.
  ...refuse('ENOSYS', ['clone3']),
  // The new mount API changes the VFS as much as mount() does (CVE-2021-41133).
  ...refuse('ENOSYS', ['open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick']),
  ...refuse('ENOSYS', ['mount_setattr', 'open_tree_attr'], { optional: true }),
  // Typing into the controlling terminal escapes the sandbox (CVE-2017-5226); TIOCLINUX copy/paste
  // on a virtual console does the same (CVE-2023-28100). The kernel reads cmd as an unsigned int,
  // so compare the low 32 bits only or 0x1_00005412 would slip past (CVE-2019-10063).
  {
    syscall: 'ioctl',
    action: 'EPERM',
    condition: 'request (low 32 bits) == TIOCSTI',
    match: { kind: 'masked-eq', arg: 1, mask: 0xffff_ffff, value: TIOCSTI },
  },
  {
    syscall: 'ioctl',
    action: 'EPERM',
    condition: 'request (low 32 bits) == TIOCLINUX',
    match: { kind: 'masked-eq', arg: 1, mask: 0xffff_ffff, value: TIOCLINUX },
  },
  // Profiling and debugging other processes: perf has a long CVE record; ptrace and
  // process_vm_* read and write other processes' memory (the kernel's ptrace access check still
  // applies when allowPtrace lifts them). kcmp leaks kernel object identity.
  ...refuse('EPERM', ['perf_event_open', 'lookup_dcookie', 'kcmp']),
  ...refuse('EPERM', ['ptrace', 'process_vm_readv', 'process_vm_writev'], { liftedBy: 'allowPtrace' }),
  // Personality flags switch off ASLR (ADDR_NO_RANDOMIZE) or make all reads executable; allow
  // only plain Linux, 32-bit Linux and the 0xffffffff query.
  {
    syscall: 'personality',
    action: 'EPERM',
    condition: 'persona (low 32 bits) is not PER_LINUX, PER_LINUX32 or the 0xffffffff query',
    match: { kind: 'none-of', arg: 0, allowed: [PER_LINUX, PER_LINUX32, PERSONALITY_QUERY] },
  },
  // Loading kernel code.
  ...refuse('EPERM', ['kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module']),
  ...refuse('EPERM', ['create_module', 'get_kernel_syms', 'query_module'], { optional: true }),
  // eBPF, userfaultfd (turns kernel races into reliable exploits) and io_uring (bypasses seccomp
  // for the operations it performs, and a large share of recent kernel CVEs).
  ...refuse('EPERM', ['bpf', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register']),
  // Raw hardware access.
  ...refuse('EPERM', ['iopl', 'ioperm']),
  ...refuse('EPERM', ['pciconfig_read', 'pciconfig_write', 'pciconfig_iobase', 's390_mmio_read', 's390_mmio_write'], {
    optional: true,
  }),
  // File handles open any inode on the filesystem, ignoring the sandbox's mount view.
  ...refuse('EPERM', ['open_by_handle_at', 'name_to_handle_at']),
  // vmsplice has been the vehicle of page-cache corruption bugs; fanotify watches the whole mount.
  ...refuse('EPERM', ['vmsplice', 'fanotify_init']),
  // Host state: swap, reboot, the clock, the host name.
  ...refuse('EPERM', ['swapon', 'swapoff', 'reboot', 'sethostname', 'setdomainname']),
  ...refuse('EPERM', ['settimeofday', 'clock_settime', 'clock_adjtime', 'adjtimex']),
  ...refuse('EPERM', ['stime', 'clock_settime64', 'clock_adjtime64'], { optional: true }),
  // Obsolete or unimplemented calls (firejail's @obsolete): nothing current uses them.
  ...refuse('EPERM', ['uselib', 'sysfs', 'vhangup', 'ustat', 'remap_file_pages']),
  ...refuse(
    'EPERM',
    [
      'nfsservctl', '_sysctl', 'bdflush', 'afs_syscall', 'break', 'ftime', 'getpmsg', 'putpmsg', 'gtty', 'stty',
      'lock', 'mpx', 'prof', 'profil', 'security', 'tuxcall', 'ulimit', 'vserver', 'sgetmask', 'ssetmask',
    ],
    { optional: true },
  ),
  // CPU emulation modes (16-bit segments, vm86, endian switches) and arch debug hooks: historic
  // information leaks. modify_ldt is needed by Wine for 16/32-bit Windows code only.
  ...refuse('EPERM', ['modify_ldt']),
  ...refuse(
    'EPERM',
    ['subpage_prot', 'switch_endian', 'vm86', 'vm86old', 'rtas', 's390_runtime_instr', 'sys_debug_setcontext'],
    { optional: true },
  ),
  // Sockets: local, IPv4, IPv6 and netlink (needed by getaddrinfo and network monitors). Every
  // other family (packet, vsock, bluetooth, AF_ALG, TIPC, ...) is rarely needed and reaches
  // little-audited kernel code. EAFNOSUPPORT is what a kernel without that family says.
  // On i386, socket() may go through socketcall(), whose arguments sit in memory where seccomp
  // cannot look; libseccomp then refuses socketcall(SYS_SOCKET) for every family. That is the
  // safe side (x86_64 code can reach socketcall through `int 0x80`), but a 32-bit x86 program
  // whose libc uses socketcall gets no sockets at all; the direct i386 socket() is filtered
  // like the native one.
  {
    syscall: 'socket',
    action: 'EAFNOSUPPORT',
    condition: 'domain is not AF_UNIX, AF_INET, AF_INET6 or AF_NETLINK',
    match: { kind: 'none-of', arg: 0, allowed: [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK] },
  },
]);
