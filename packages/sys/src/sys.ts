import { SysError } from './errors.js';

/**
 * The parent-side system calls berth makes from Node, as `libc()` returns
 * them. Every method throws a SysError (with op, path and errno) on failure.
 */
export interface Sys {
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data?: string | null,
  ): void;
  umount(target: string, flags?: number): void;
  /** Joins the namespace behind `fd` (only safe for namespaces a threaded process may join: net, uts, ipc). */
  setns(fd: number, nstype: number): void;
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): void;
  prctl(option: number, arg2?: number | bigint, arg3?: number | bigint): number;
  ioctl(fd: number, request: number, arg?: number | Buffer): number;
  kill(pid: number, signal: number): void;
  close(fd: number): void;
}

// x86_64 and aarch64 syscall numbers for the calls glibc 2.36 has no wrapper for
const SYSCALLS: Record<string, { pidfd_open: number; pidfd_send_signal: number }> = {
  x64: { pidfd_open: 434, pidfd_send_signal: 424 },
  arm64: { pidfd_open: 434, pidfd_send_signal: 424 },
};

let real: Sys | undefined;

/**
 * The real implementation, through koffi. Loaded on first use: commands that do
 * not need it never pay for loading the FFI.
 */
export async function libc(): Promise<Sys> {
  if (real) return real;
  const { default: koffi } = await import('koffi');
  const lib = koffi.load('libc.so.6');
  const mount = lib.func(
    'int mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data)',
  );
  const umount2 = lib.func('int umount2(const char *target, int flags)');
  const setns = lib.func('int setns(int fd, int nstype)');
  const prctl = lib.func(
    'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
  );
  const ioctlInt = lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)');
  const ioctlBuf = lib.func('int ioctl(int fd, unsigned long req, _Inout_ uint8_t *arg)');
  const kill = lib.func('int kill(int pid, int sig)');
  const close = lib.func('int close(int fd)');
  const syscall3 = lib.func('long syscall(long nr, long a, long b, long c)');
  const nr = SYSCALLS[process.arch];
  const check = (r: number | bigint, op: string, path?: string): number => {
    if (Number(r) < 0) throw new SysError(op, koffi.errno(), path);
    return Number(r);
  };
  real = {
    mount: (source, target, fstype, flags, data) =>
      void check(mount(source, target, fstype, flags, data ?? null), 'mount', target),
    umount: (target, flags = 0) => void check(umount2(target, flags), 'umount', target),
    setns: (fd, nstype) => void check(setns(fd, nstype), 'setns'),
    pidfdOpen: (pid) => {
      if (!nr) throw new SysError('pidfd_open', 38);
      return check(syscall3(nr.pidfd_open, pid, 0, 0), 'pidfd_open', String(pid));
    },
    pidfdSendSignal: (pidfd, signal) => {
      if (!nr) throw new SysError('pidfd_send_signal', 38);
      check(syscall3(nr.pidfd_send_signal, pidfd, signal, 0), 'pidfd_send_signal');
    },
    prctl: (option, a2 = 0, a3 = 0) => check(prctl(option, a2, a3, 0, 0), 'prctl'),
    ioctl: (fd, request, arg = 0) =>
      check(typeof arg === 'number' ? ioctlInt(fd, request, arg) : ioctlBuf(fd, request, arg), 'ioctl'),
    kill: (pid, signal) => void check(kill(pid, signal), 'kill', String(pid)),
    close: (fd) => void check(close(fd), 'close'),
  };
  return real;
}
