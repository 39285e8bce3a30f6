/**
 * Seccomp: compiles an OCI `linux.seccomp` profile into a classic BPF program
 * with libseccomp (Debian's libseccomp2, `libseccomp.so.2`, through koffi), and
 * hands a NOTIFY filter's listener fd to the seccomp agent at `listenerPath`.
 *
 * The launcher only loads the bytes (`seccomp(SECCOMP_SET_MODE_FILTER)`, step
 * `seccomp`); every decision is made here. Rules follow runc's
 * libcontainer/seccomp: a rule whose action equals the default is skipped, a
 * syscall argument compared more than once makes one rule per comparison, and a
 * syscall name libseccomp does not know is skipped only where skipping cannot
 * widen what the container may do (otherwise it is an error naming the rule).
 */
import { closeSync, readSync } from 'node:fs';
import { release } from 'node:os';
import { BerthError } from './errors.js';

/** A seccomp profile as in the OCI runtime spec (`linux.seccomp`). */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: Array<{
    names: string[];
    action: string;
    errnoRet?: number;
    args?: Array<{ index: number; value: number | bigint; valueTwo?: number | bigint; op: string }>;
  }>;
}

/** A compiled filter: what the launcher's `seccomp` step loads. */
export interface CompiledSeccomp {
  /** The BPF program: struct sock_filter[], 8 bytes each, native byte order. */
  bpf: Buffer;
  /** seccomp(2) SECCOMP_SET_MODE_FILTER flags, SECCOMP_FILTER_FLAG_NEW_LISTENER included for `notify`. */
  flags: number;
  /** Some rule uses SCMP_ACT_NOTIFY: the filter makes a listener fd for the agent at `listenerPath`. */
  notify: boolean;
  /** Syscall names libseccomp does not know, skipped (as runc does) because skipping them only narrows. */
  skipped: string[];
}

/** seccomp(2) filter flags, by the names config-linux.md uses. */
export const SECCOMP_FILTER_FLAGS: Readonly<Record<string, number>> = Object.freeze({
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
});
export const SECCOMP_FILTER_FLAG_NEW_LISTENER = 8;

const ACT = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
  NOTIFY: 0x7fc00000,
} as const;

const EPERM = 1;

/** The libseccomp action value for an OCI action name (ERRNO and TRACE carry `ret`, EPERM by default, as runc). */
export function seccompAction(name: string, ret: number | undefined, path: string): number {
  switch (name) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return ACT.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return ACT.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return ACT.TRAP;
    case 'SCMP_ACT_ERRNO':
      return (ACT.ERRNO | ((ret ?? EPERM) & 0xffff)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (ACT.TRACE | ((ret ?? EPERM) & 0xffff)) >>> 0;
    case 'SCMP_ACT_LOG':
      return ACT.LOG;
    case 'SCMP_ACT_ALLOW':
      return ACT.ALLOW;
    case 'SCMP_ACT_NOTIFY':
      return ACT.NOTIFY;
    default:
      throw new BerthError(`${path}: ${JSON.stringify(name)} is not a seccomp action`, {
        code: 'EINVALIDSPEC',
      });
  }
}

/** libseccomp's enum scmp_compare. */
export const SECCOMP_OPERATOR_VALUES: Readonly<Record<string, number>> = Object.freeze({
  SCMP_CMP_NE: 1,
  SCMP_CMP_LT: 2,
  SCMP_CMP_LE: 3,
  SCMP_CMP_EQ: 4,
  SCMP_CMP_GE: 5,
  SCMP_CMP_GT: 6,
  SCMP_CMP_MASKED_EQ: 7,
});

/** The libseccomp name of an OCI architecture (`SCMP_ARCH_X86_64` → `x86_64`). */
export function seccompArchName(arch: string): string {
  return arch.replace(/^SCMP_ARCH_/, '').toLowerCase();
}

/** The architecture this process runs on, as an OCI name. */
export function nativeSeccompArch(): string {
  const map: Record<string, string> = {
    x64: 'SCMP_ARCH_X86_64',
    ia32: 'SCMP_ARCH_X86',
    arm64: 'SCMP_ARCH_AARCH64',
    arm: 'SCMP_ARCH_ARM',
    ppc64: 'SCMP_ARCH_PPC64LE',
    s390x: 'SCMP_ARCH_S390X',
    riscv64: 'SCMP_ARCH_RISCV64',
    loong64: 'SCMP_ARCH_LOONGARCH64',
    mips: 'SCMP_ARCH_MIPS',
    mipsel: 'SCMP_ARCH_MIPSEL',
  };
  return map[process.arch] ?? `SCMP_ARCH_${process.arch.toUpperCase()}`;
}

// libseccomp's enum scmp_filter_attr
const ATTR_CTL_NNP = 3;
const ATTR_CTL_OPTIMIZE = 8;
const NR_SCMP_ERROR = -1;

interface Lib {
  init(def: number): unknown;
  release(ctx: unknown): void;
  archAdd(ctx: unknown, token: number): number;
  archResolve(name: string): number;
  syscallResolve(name: string): number;
  ruleAdd(ctx: unknown, action: number, nr: number, count: number, args: Buffer | null): number;
  attrSet(ctx: unknown, attr: number, value: number): number;
  exportBpf(ctx: unknown, fd: number): number;
  memfd(name: string, flags: number): number;
  errno(): number;
  version(): string;
}

let lib: Lib | undefined;
let loadError: Error | undefined;

async function load(): Promise<Lib> {
  if (lib) return lib;
  if (loadError) throw loadError;
  const { default: koffi } = await import('koffi');
  let so: ReturnType<typeof koffi.load>;
  try {
    so = koffi.load('libseccomp.so.2');
  } catch (e) {
    loadError = new BerthError(
      `linux.seccomp: cannot load libseccomp.so.2 (install libseccomp2, e.g. apt-get install libseccomp2): ${(e as Error).message}`,
      { code: 'EUNSUPPORTED' },
    );
    throw loadError;
  }
  const libc = koffi.load('libc.so.6');
  const init = so.func('void *seccomp_init(uint32_t def_action)');
  const release = so.func('void seccomp_release(void *ctx)');
  const archAdd = so.func('int seccomp_arch_add(void *ctx, uint32_t arch_token)');
  const archResolve = so.func('uint32_t seccomp_arch_resolve_name(const char *name)');
  const syscallResolve = so.func('int seccomp_syscall_resolve_name(const char *name)');
  const ruleAdd = so.func(
    'int seccomp_rule_add_array(void *ctx, uint32_t action, int syscall, unsigned int arg_cnt, const uint8_t *args)',
  );
  const attrSet = so.func('int seccomp_attr_set(void *ctx, int attr, uint32_t value)');
  const exportBpf = so.func('int seccomp_export_bpf(const void *ctx, int fd)');
  const versionFn = so.func('const void *seccomp_version(void)');
  const memfd = libc.func('int memfd_create(const char *name, unsigned int flags)');
  lib = {
    init: (def) => init(def),
    release: (ctx) => release(ctx),
    archAdd: (ctx, token) => archAdd(ctx, token),
    archResolve: (name) => archResolve(name),
    syscallResolve: (name) => syscallResolve(name),
    ruleAdd: (ctx, action, nr, count, args) => ruleAdd(ctx, action, nr, count, args),
    attrSet: (ctx, attr, value) => attrSet(ctx, attr, value),
    exportBpf: (ctx, fd) => exportBpf(ctx, fd),
    memfd: (name, flags) => memfd(name, flags),
    errno: () => koffi.errno(),
    version: () => {
      const v = koffi.decode(versionFn(), koffi.array('uint32', 3)) as number[];
      return v.join('.');
    },
  };
  return lib;
}

/** The version of the libseccomp berth compiles with (`2.5.4`), or undefined when it cannot be loaded. */
export async function libseccompVersion(): Promise<string | undefined> {
  try {
    return (await load()).version();
  } catch {
    return undefined;
  }
}

/** Whether libseccomp (as loaded here) knows an architecture, by its OCI name. */
export async function seccompArchSupported(arch: string): Promise<boolean> {
  const l = await load();
  return l.archResolve(seccompArchName(arch)) !== 0;
}

// SCMP_ACT_ALLOW and SCMP_ACT_LOG let a syscall run: a default that does so
// means skipping a rule could let through what the rule would have stopped.
const PERMISSIVE = new Set(['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG']);

function kernelAtLeast(major: number, minor: number): boolean {
  const [a = 0, b = 0] = release()
    .split(/[.-]/)
    .map((n) => Number.parseInt(n, 10) || 0);
  return a > major || (a === major && b >= minor);
}

/**
 * The version of what compileSeccomp makes of a profile: a cache of compiled filters keys on
 * it (@berth/runtime). Bumped whenever the same profile compiles to something else.
 * 2: runc's ENOSYS stub, SPEC_ALLOW without `flags`.
 */
export const SECCOMP_COMPILER_VERSION = 2;

// Defaults that let an unknown syscall through (TRACE: a tracer handles new syscalls itself):
// no ENOSYS stub for them (runc's isAllowAction).
const ALLOW_LIKE = new Set(['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE']);

/** AUDIT_ARCH_* of the architectures the stub knows, by Node's process.arch. */
const AUDIT_ARCH: Record<string, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };
const BPF_MAXINSNS = 4096;
const SECCOMP_RET_ERRNO = 0x00050000;
const ENOSYS = 38;

/**
 * runc's ENOSYS stub: a syscall numbered above every syscall the profile names (one newer
 * than the profile) gets ENOSYS instead of the default action, so that the C library's
 * fallback for a syscall the kernel lacks works (glibc's fchmodat2 → fchmodat, clone3 → clone,
 * which an EPERM breaks). Prepended to libseccomp's program for the native architecture
 * (x86-64: not for x32 numbers); other architectures and numbers go to the filter unchanged.
 */
export function withEnosysStub(bpf: Buffer, lastNr: number, arch: string = process.arch): Buffer {
  const audit = AUDIT_ARCH[arch];
  if (audit === undefined || lastNr <= 0) return bpf;
  const x86 = arch === 'x64';
  // ld [4] (arch); jeq ARCH else → filter; ld [0] (nr); [x86-64: jset x32 bit → filter];
  // jgt LAST → ENOSYS else → filter; ret ERRNO(ENOSYS); then the filter
  const n = x86 ? 6 : 5;
  if (bpf.length / 8 + n > BPF_MAXINSNS) return bpf;
  const stub = Buffer.alloc(n * 8);
  let at = 0;
  const insn = (code: number, jt: number, jf: number, k: number) => {
    stub.writeUInt16LE(code, at);
    stub.writeUInt8(jt, at + 2);
    stub.writeUInt8(jf, at + 3);
    stub.writeUInt32LE(k >>> 0, at + 4);
    at += 8;
  };
  const toFilter = (i: number) => n - i - 1;
  insn(0x20, 0, 0, 4); // BPF_LD|BPF_W|BPF_ABS seccomp_data.arch
  insn(0x15, 0, toFilter(1), audit); // BPF_JMP|BPF_JEQ|BPF_K
  insn(0x20, 0, 0, 0); // seccomp_data.nr
  if (x86) insn(0x45, toFilter(3), 0, 0x40000000); // BPF_JMP|BPF_JSET|BPF_K: an x32 syscall
  insn(0x25, 0, toFilter(n - 2), lastNr); // BPF_JMP|BPF_JGT|BPF_K
  insn(0x06, 0, 0, SECCOMP_RET_ERRNO | ENOSYS); // BPF_RET|BPF_K
  return Buffer.concat([stub, bpf]);
}

/**
 * Compiles an OCI seccomp profile into BPF. `path` is the profile's JSON path
 * for error messages (`linux.seccomp`).
 */
export async function compileSeccomp(
  profile: SeccompProfile,
  path = 'linux.seccomp',
): Promise<CompiledSeccomp> {
  const l = await load();
  const defaultAction = seccompAction(
    profile.defaultAction,
    profile.defaultErrnoRet,
    `${path}.defaultAction`,
  );
  let flags = 0;
  for (const [i, name] of (profile.flags ?? []).entries()) {
    const f = SECCOMP_FILTER_FLAGS[name];
    if (f === undefined)
      throw new BerthError(`${path}.flags[${i}]: ${JSON.stringify(name)} is not a seccomp filter flag`, {
        code: 'EINVALIDSPEC',
      });
    // the launcher is single-threaded: TSYNC has nothing to synchronise (runc ignores it too)
    if (name !== 'SECCOMP_FILTER_FLAG_TSYNC') flags |= f;
  }
  // no `flags` at all (not even []): SPEC_ALLOW, as runc and Docker do, where the kernel has it
  // (4.17): a filter otherwise turns on the speculative store bypass mitigation, at a cost
  if (profile.flags === undefined && kernelAtLeast(4, 17))
    flags |= SECCOMP_FILTER_FLAGS['SECCOMP_FILTER_FLAG_SPEC_ALLOW']!;
  if (profile.defaultAction === 'SCMP_ACT_NOTIFY')
    throw new BerthError(
      `${path}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action (the container could not report its listener fd)`,
      { code: 'EINVALIDSPEC' },
    );
  const ctx = l.init(defaultAction);
  if (!ctx)
    throw new BerthError(`${path}.defaultAction: libseccomp refused ${profile.defaultAction}`, {
      code: 'EINVALIDSPEC',
    });
  const skipped: string[] = [];
  let notify = false;
  try {
    for (const [i, arch] of (profile.architectures ?? []).entries()) {
      const token = l.archResolve(seccompArchName(arch));
      if (token === 0)
        throw new BerthError(
          `${path}.architectures[${i}]: ${arch} is not supported by this host's libseccomp (${l.version()})`,
          { code: 'EUNSUPPORTED' },
        );
      const r = l.archAdd(ctx, token);
      if (r < 0 && r !== -17 /* EEXIST: the native one */)
        throw new BerthError(`${path}.architectures[${i}]: seccomp_arch_add ${arch}: error ${-r}`, {
          code: 'EUNSUPPORTED',
        });
    }
    // the launcher loads the filter itself, after (or without) no_new_privs as the config says
    l.attrSet(ctx, ATTR_CTL_NNP, 0);
    if ((profile.syscalls?.length ?? 0) > 8) l.attrSet(ctx, ATTR_CTL_OPTIMIZE, 2);
    const defaultPermissive = PERMISSIVE.has(profile.defaultAction);
    // the largest syscall number the profile names (native), for the ENOSYS stub below
    let lastNr = -1;
    for (const rule of profile.syscalls ?? [])
      for (const name of rule.names) {
        const nr = l.syscallResolve(name);
        if (nr !== NR_SCMP_ERROR && nr > lastNr) lastNr = nr;
      }
    for (const [i, rule] of (profile.syscalls ?? []).entries()) {
      const rulePath = `${path}.syscalls[${i}]`;
      const action = seccompAction(rule.action, rule.errnoRet, `${rulePath}.action`);
      if (rule.action === 'SCMP_ACT_NOTIFY') {
        notify = true;
        const k = rule.names.indexOf('write');
        // the container writes to report the listener fd: notifying write would hang it (as in runc)
        if (k >= 0)
          throw new BerthError(
            `${rulePath}.names[${k}]: SCMP_ACT_NOTIFY cannot be used for the write syscall`,
            {
              code: 'EINVALIDSPEC',
            },
          );
      }
      if (action === defaultAction) continue; // libseccomp refuses a rule that changes nothing
      const conds = (rule.args ?? []).map((a, j) => {
        const op = SECCOMP_OPERATOR_VALUES[a.op];
        if (op === undefined)
          throw new BerthError(
            `${rulePath}.args[${j}].op: ${JSON.stringify(a.op)} is not a seccomp operator`,
            {
              code: 'EINVALIDSPEC',
            },
          );
        if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5)
          throw new BerthError(`${rulePath}.args[${j}].index: must be 0 to 5`, { code: 'EINVALIDSPEC' });
        const b = Buffer.alloc(24);
        b.writeUInt32LE(a.index, 0);
        b.writeUInt32LE(op, 4);
        b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a.value)), 8);
        b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a.valueTwo ?? 0)), 16);
        return { index: a.index, buf: b };
      });
      const counts = new Map<number, number>();
      for (const c of conds) counts.set(c.index, (counts.get(c.index) ?? 0) + 1);
      // libseccomp compares an argument once per rule: several comparisons of
      // one argument become one rule each (runc does the same)
      const groups = [...counts.values()].some((n) => n > 1) ? conds.map((c) => [c]) : [conds];
      for (const [k, name] of rule.names.entries()) {
        const nr = l.syscallResolve(name);
        if (nr === NR_SCMP_ERROR) {
          if (defaultPermissive && !PERMISSIVE.has(rule.action))
            throw new BerthError(
              `${rulePath}.names[${k}]: libseccomp ${l.version()} does not know the syscall ${JSON.stringify(name)}, and leaving the rule out would allow it`,
              { code: 'EUNSUPPORTED' },
            );
          skipped.push(name);
          continue;
        }
        for (const group of groups) {
          const args = group.length ? Buffer.concat(group.map((c) => c.buf)) : null;
          const r = l.ruleAdd(ctx, action, nr, group.length, args);
          if (r < 0)
            throw new BerthError(
              `${rulePath}: libseccomp cannot add the rule for ${JSON.stringify(name)}: ${errnoText(-r)}`,
              { code: 'EINVALIDSPEC' },
            );
        }
      }
    }
    const fd = l.memfd('berth-seccomp', 1 /* MFD_CLOEXEC */);
    if (fd < 0) throw new BerthError(`${path}: memfd_create: errno ${l.errno()}`, { code: 'EIO' });
    let bpf: Buffer;
    try {
      const r = l.exportBpf(ctx, fd);
      if (r < 0) throw new BerthError(`${path}: seccomp_export_bpf: ${errnoText(-r)}`, { code: 'EIO' });
      const chunks: Buffer[] = [];
      let pos = 0;
      for (;;) {
        const b = Buffer.alloc(65536);
        const n = readSync(fd, b, 0, b.length, pos);
        if (n <= 0) break;
        chunks.push(b.subarray(0, n));
        pos += n;
      }
      bpf = Buffer.concat(chunks);
    } finally {
      closeSync(fd);
    }
    if (bpf.length === 0 || bpf.length % 8 !== 0)
      throw new BerthError(`${path}: libseccomp produced a malformed program (${bpf.length} bytes)`, {
        code: 'EIO',
      });
    if (!ALLOW_LIKE.has(profile.defaultAction)) bpf = withEnosysStub(bpf, lastNr);
    if (notify) flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    if (flags & SECCOMP_FILTER_FLAGS['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV']! && !notify)
      throw new BerthError(
        `${path}.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY (the kernel refuses it otherwise)`,
        { code: 'EINVALIDSPEC' },
      );
    return { bpf, flags, notify, skipped: [...new Set(skipped)].sort() };
  } finally {
    l.release(ctx);
  }
}

function errnoText(e: number): string {
  const names: Record<number, string> = {
    1: 'EPERM',
    2: 'ENOENT',
    12: 'ENOMEM',
    13: 'EACCES',
    17: 'EEXIST',
    22: 'EINVAL',
    95: 'EOPNOTSUPP',
  };
  return names[e] ?? `errno ${e}`;
}

// ---- the listener fd (SCMP_ACT_NOTIFY) ----

// x86_64 and aarch64 share these numbers (the unified syscall table since 5.x)
const NR_PIDFD_OPEN = 434;
const NR_PIDFD_GETFD = 438;

interface FdLib {
  syscall(nr: number, a: number, b: number, c: number): number;
  socket(domain: number, type: number, proto: number): number;
  connect(fd: number, addr: Buffer, len: number): number;
  sendmsg(fd: number, msg: unknown, flags: number): number;
  close(fd: number): number;
  errno(): number;
}
let fdlib: FdLib | undefined;

async function loadFdLib(): Promise<FdLib> {
  if (fdlib) return fdlib;
  const { default: koffi } = await import('koffi');
  const libc = koffi.load('libc.so.6');
  const syscall = libc.func('long syscall(long nr, long a, long b, long c)');
  const socket = libc.func('int socket(int domain, int type, int proto)');
  const connect = libc.func('int connect(int fd, const uint8_t *addr, uint32_t len)');
  const iovec = koffi.struct('berth_iovec', { base: 'const uint8_t *', len: 'size_t' });
  const msghdr = koffi.struct('berth_msghdr', {
    name: 'void *',
    namelen: 'uint32_t',
    iov: koffi.pointer(iovec),
    iovlen: 'size_t',
    control: 'const uint8_t *',
    controllen: 'size_t',
    flags: 'int',
  });
  const sendmsg = libc.func('long sendmsg(int fd, const berth_msghdr *msg, int flags)');
  const close = libc.func('int close(int fd)');
  void msghdr;
  fdlib = {
    syscall: (nr, a, b, c) => Number(syscall(nr, a, b, c)),
    socket: (d, t, p) => socket(d, t, p),
    connect: (fd, addr, len) => connect(fd, addr, len),
    sendmsg: (fd, msg, flags) => Number(sendmsg(fd, msg, flags)),
    close: (fd) => close(fd),
    errno: () => koffi.errno(),
  };
  return fdlib;
}

/**
 * Takes a copy of file descriptor `fd` of process `pid` (pidfd_getfd(2); root
 * may, the process need not cooperate). The launcher reports the number of its
 * seccomp listener fd and waits while the runtime takes it.
 */
export async function takeProcessFd(pid: number, fd: number): Promise<number> {
  const l = await loadFdLib();
  const pidfd = l.syscall(NR_PIDFD_OPEN, pid, 0, 0);
  if (pidfd < 0)
    throw new BerthError(`seccomp listener: pidfd_open ${pid}: errno ${l.errno()}`, { code: 'EIO' });
  try {
    const copy = l.syscall(NR_PIDFD_GETFD, pidfd, fd, 0);
    if (copy < 0) throw new BerthError(`seccomp listener: pidfd_getfd: errno ${l.errno()}`, { code: 'EIO' });
    return copy;
  } finally {
    l.close(pidfd);
  }
}

/** Closes an fd returned by `takeProcessFd`. */
export async function closeFd(fd: number): Promise<void> {
  (await loadFdLib()).close(fd);
}

/**
 * Sends `fd` (SCM_RIGHTS) with `message` (the container process state, JSON)
 * to the seccomp agent listening on the Unix socket `socketPath`, in one
 * sendmsg, as runtime.md describes for `listenerPath`.
 */
export async function sendFdToSocket(socketPath: string, fd: number, message: string): Promise<void> {
  const l = await loadFdLib();
  const sock = l.socket(1 /* AF_UNIX */, 1 | 0o2000000 /* SOCK_STREAM | SOCK_CLOEXEC */, 0);
  if (sock < 0)
    throw new BerthError(`linux.seccomp.listenerPath: socket: errno ${l.errno()}`, { code: 'EIO' });
  try {
    const addr = Buffer.alloc(110);
    addr.writeUInt16LE(1, 0);
    const p = Buffer.from(socketPath);
    if (p.length >= 108)
      throw new BerthError(`linux.seccomp.listenerPath: ${socketPath} is too long for a Unix socket`, {
        code: 'EINVALIDSPEC',
      });
    p.copy(addr, 2);
    if (l.connect(sock, addr, 2 + p.length + 1) < 0) {
      const e = l.errno();
      throw new BerthError(
        `linux.seccomp.listenerPath: cannot connect to ${socketPath}: ${e === 2 ? 'ENOENT (no such socket)' : e === 111 ? 'ECONNREFUSED (nobody listens)' : `errno ${e}`}`,
        { code: 'EIO', path: socketPath },
      );
    }
    // struct cmsghdr { size_t len; int level; int type; } + one int, padded to 8
    const control = Buffer.alloc(24);
    control.writeBigUInt64LE(20n, 0); // CMSG_LEN(sizeof(int))
    control.writeInt32LE(1, 8); // SOL_SOCKET
    control.writeInt32LE(1, 12); // SCM_RIGHTS
    control.writeInt32LE(fd, 16);
    const data = Buffer.from(message);
    const msg = {
      name: null,
      namelen: 0,
      iov: [{ base: data, len: data.length }],
      iovlen: 1,
      control,
      controllen: control.length,
      flags: 0,
    };
    const n = l.sendmsg(sock, msg, 0x4000 /* MSG_NOSIGNAL */);
    if (n < 0)
      throw new BerthError(`linux.seccomp.listenerPath: sendmsg to ${socketPath}: errno ${l.errno()}`, {
        code: 'EIO',
        path: socketPath,
      });
  } finally {
    l.close(sock);
  }
}
