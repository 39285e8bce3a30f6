import { closeSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { SysError } from './errors.js';

/**
 * File system calls Node has no binding for, relative to directory fds: `openat2` (RESOLVE_*), `*at` calls with
 * `AT_SYMLINK_NOFOLLOW`, `mknodat`, and extended attributes. They are synchronous on purpose: layer unpack makes
 * one of these per tar entry, and a round trip through libuv's thread pool costs more than the call.
 *
 * koffi is loaded on first use, so importing @berth/sys costs nothing for commands that never call these.
 * Every function throws a `SysError` (op, path, errno) on failure.
 */

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_SYMLINK_FOLLOW = 0x400;
export const AT_EMPTY_PATH = 0x1000;

/** open(2) flags, with the two Node's `fs.constants` lacks. */
export const O = {
  RDONLY: constants.O_RDONLY,
  WRONLY: constants.O_WRONLY,
  RDWR: constants.O_RDWR,
  CREAT: constants.O_CREAT,
  EXCL: constants.O_EXCL,
  TRUNC: constants.O_TRUNC,
  NOFOLLOW: constants.O_NOFOLLOW,
  DIRECTORY: constants.O_DIRECTORY,
  NONBLOCK: constants.O_NONBLOCK,
  NOCTTY: constants.O_NOCTTY,
  /** the same value on x86_64 and aarch64 */
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

/** openat2(2) `resolve` flags (linux/openat2.h). */
export const RESOLVE = {
  NO_XDEV: 0x01,
  NO_MAGICLINKS: 0x02,
  NO_SYMLINKS: 0x04,
  BENEATH: 0x08,
  IN_ROOT: 0x10,
  CACHED: 0x20,
} as const;

export const S_IFMT = 0o170000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFDIR = 0o040000;
export const S_IFBLK = 0o060000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

/** glibc's makedev: the 12/20-bit major and 8/24-bit minor split of a 64-bit dev_t. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** The major and minor numbers of a dev_t (as `Stats.rdev` gives it). */
export function splitDev(rdev: number | bigint): { major: number; minor: number } {
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return { major, minor };
}

// openat2 has the same number in the generic table (aarch64) and on x86_64; glibc 2.36 has no wrapper
const SYS_OPENAT2: Record<string, number> = { x64: 437, arm64: 437 };

type Fn = (...args: unknown[]) => number | bigint;

interface Native {
  openat: Fn;
  syscall4: Fn;
  mkdirat: Fn;
  mknodat: Fn;
  symlinkat: Fn;
  linkat: Fn;
  unlinkat: Fn;
  renameat: Fn;
  fchownat: Fn;
  fchmodat: Fn;
  utimensat: Fn;
  fsetxattr: Fn;
  fgetxattr: Fn;
  flistxattr: Fn;
  lsetxattr: Fn;
  lgetxattr: Fn;
  llistxattr: Fn;
  flock: Fn;
  errno: () => number;
}

let native: Native | undefined;

function load(): Native {
  if (native !== undefined) return native;
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as {
    load(name: string): { func(sig: string): Fn };
    errno(): number;
  };
  const lib = koffi.load('libc.so.6');
  // openat and syscall are variadic in C; on x86_64 and aarch64 Linux an int or pointer passed as a variadic
  // argument travels exactly like a fixed one, so fixed prototypes are safe there and much faster through koffi
  native = {
    openat: lib.func('int openat(int dirfd, const char *path, int flags, uint32_t mode)'),
    syscall4: lib.func('long syscall(long nr, long a, const char *b, void *c, unsigned long d)'),
    mkdirat: lib.func('int mkdirat(int dirfd, const char *path, uint32_t mode)'),
    mknodat: lib.func('int mknodat(int dirfd, const char *path, uint32_t mode, uint64_t dev)'),
    symlinkat: lib.func('int symlinkat(const char *target, int dirfd, const char *path)'),
    linkat: lib.func(
      'int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)',
    ),
    unlinkat: lib.func('int unlinkat(int dirfd, const char *path, int flags)'),
    renameat: lib.func('int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)'),
    fchownat: lib.func('int fchownat(int dirfd, const char *path, uint32_t uid, uint32_t gid, int flags)'),
    fchmodat: lib.func('int fchmodat(int dirfd, const char *path, uint32_t mode, int flags)'),
    utimensat: lib.func('int utimensat(int dirfd, const char *path, const int64_t *times, int flags)'),
    fsetxattr: lib.func('int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)'),
    fgetxattr: lib.func('intptr_t fgetxattr(int fd, const char *name, _Out_ void *value, size_t size)'),
    flistxattr: lib.func('intptr_t flistxattr(int fd, _Out_ char *list, size_t size)'),
    lsetxattr: lib.func(
      'int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)',
    ),
    lgetxattr: lib.func(
      'intptr_t lgetxattr(const char *path, const char *name, _Out_ void *value, size_t size)',
    ),
    llistxattr: lib.func('intptr_t llistxattr(const char *path, _Out_ char *list, size_t size)'),
    flock: lib.func('int flock(int fd, int op)'),
    errno: () => koffi.errno(),
  };
  return native;
}

function check(n: Native, r: number | bigint, op: string, path?: string): number {
  const v = Number(r);
  if (v < 0) throw new SysError(op, n.errno(), path);
  return v;
}

/** openat(2): an fd for `path` relative to `dirfd` (O_CLOEXEC is always added). */
export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  const n = load();
  return check(n, n.openat(dirfd, path, flags | O.CLOEXEC, mode), 'openat', path);
}

export interface OpenHow {
  flags: number;
  mode?: number;
  /** RESOLVE_* flags */
  resolve: number;
}

const how = Buffer.alloc(24);

/**
 * openat2(2) (Linux 5.6+): resolves `path` relative to `dirfd` under the `resolve` rules, e.g.
 * `RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS` refuses any `..` that leaves `dirfd` and any symlink on the way.
 * O_CLOEXEC is always added. ENOSYS on older kernels: callers may fall back to a component-by-component walk.
 */
export function openat2(dirfd: number, path: string, h: OpenHow): number {
  const n = load();
  const nr = SYS_OPENAT2[process.arch];
  if (nr === undefined) throw new SysError('openat2', 38, path);
  how.writeBigUInt64LE(BigInt(h.flags | O.CLOEXEC), 0);
  how.writeBigUInt64LE(BigInt(h.mode ?? 0), 8);
  how.writeBigUInt64LE(BigInt(h.resolve), 16);
  return check(n, n.syscall4(nr, dirfd, path, how, how.length), 'openat2', path);
}

/**
 * An fd for `rel` resolved inside the directory `dirfd`, as a process chrooted there would see it:
 * symlinks (absolute ones too) and `..` stay inside it (openat2 RESOLVE_IN_ROOT, no magic links),
 * never reaching a file outside. Where openat2 is missing (ENOSYS: Linux < 5.6), each component is
 * opened O_NOFOLLOW instead, so that any symlink on the way fails (ELOOP or ENOTDIR) and `..` is
 * ENOENT. O_CLOEXEC is always added.
 */
export function openInRoot(dirfd: number, rel: string, flags: number): number {
  try {
    return openat2(dirfd, rel, { flags, resolve: RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS });
  } catch (e) {
    if (!(e instanceof SysError) || e.errnoNumber !== 38) throw e; // ENOSYS
  }
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new SysError('openat', 2, rel); // never above the root
  if (parts.length === 0) return openat(dirfd, '.', flags);
  let cur = dirfd;
  try {
    for (const [i, p] of parts.entries()) {
      const last = i === parts.length - 1;
      const next = openat(cur, p, last ? flags | O.NOFOLLOW : O.PATH | O.DIRECTORY | O.NOFOLLOW);
      if (cur !== dirfd) closeSync(cur);
      cur = next;
    }
    return cur;
  } catch (e) {
    if (cur !== dirfd) closeSync(cur);
    throw e;
  }
}

export function mkdirat(dirfd: number, path: string, mode: number): void {
  const n = load();
  check(n, n.mkdirat(dirfd, path, mode), 'mkdirat', path);
}

/** mknodat(2); `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO) and the permission bits. */
export function mknodat(dirfd: number, path: string, mode: number, major = 0, minor = 0): void {
  const n = load();
  check(n, n.mknodat(dirfd, path, mode, makedev(major, minor)), 'mknodat', path);
}

export function symlinkat(target: string, dirfd: number, path: string): void {
  const n = load();
  check(n, n.symlinkat(target, dirfd, path), 'symlinkat', path);
}

/** linkat(2): without AT_SYMLINK_FOLLOW a symlink at `oldpath` is linked itself, never followed. */
export function linkat(
  olddirfd: number,
  oldpath: string,
  newdirfd: number,
  newpath: string,
  flags = 0,
): void {
  const n = load();
  check(n, n.linkat(olddirfd, oldpath, newdirfd, newpath, flags), 'linkat', newpath);
}

/** flock(2) through koffi: 0, or -errno (EINTR is retried). */
export function flockFd(fd: number, op: number): number {
  const n = load();
  for (;;) {
    if (Number(n.flock(fd, op)) === 0) return 0;
    const e = n.errno();
    if (e !== 4) return -e;
  }
}

/** unlinkat(2); AT_REMOVEDIR removes an empty directory. */
export function unlinkat(dirfd: number, path: string, flags = 0): void {
  const n = load();
  check(n, n.unlinkat(dirfd, path, flags), 'unlinkat', path);
}

export function renameat(olddirfd: number, oldpath: string, newdirfd: number, newpath: string): void {
  const n = load();
  check(n, n.renameat(olddirfd, oldpath, newdirfd, newpath), 'renameat', newpath);
}

/** fchownat(2); pass AT_SYMLINK_NOFOLLOW to change a symlink itself, or AT_EMPTY_PATH with `''` for `dirfd`. */
export function fchownat(dirfd: number, path: string, uid: number, gid: number, flags: number): void {
  const n = load();
  check(n, n.fchownat(dirfd, path, uid, gid, flags), 'fchownat', path);
}

/**
 * fchmodat(2). With AT_SYMLINK_NOFOLLOW, glibc opens the final component O_PATH|O_NOFOLLOW and changes the mode
 * through that fd (or the kernel's fchmodat2 does): a symlink there fails with EOPNOTSUPP, it is never followed.
 */
export function fchmodat(dirfd: number, path: string, mode: number, flags: number): void {
  const n = load();
  check(n, n.fchmodat(dirfd, path, mode, flags), 'fchmodat', path);
}

const times = new BigInt64Array(4);

function timespec(at: number, i: number): void {
  const sec = Math.floor(at);
  times[i] = BigInt(sec);
  times[i + 1] = BigInt(Math.round((at - sec) * 1e9));
}

/** utimensat(2) with times in (fractional) seconds; AT_SYMLINK_NOFOLLOW sets a symlink's own times. */
export function utimensat(dirfd: number, path: string, atime: number, mtime: number, flags: number): void {
  const n = load();
  timespec(atime, 0);
  timespec(mtime, 2);
  check(n, n.utimensat(dirfd, path, times, flags), 'utimensat', path);
}

/** fsetxattr(2) on an open (not O_PATH) fd. */
export function fsetxattr(fd: number, name: string, value: Uint8Array, path?: string): void {
  const n = load();
  check(n, n.fsetxattr(fd, name, value, value.length, 0), `setxattr ${name}`, path);
}

/** fgetxattr(2): the value, or undefined when the file has no such attribute (ENODATA). */
export function fgetxattr(fd: number, name: string, path?: string): Buffer | undefined {
  const n = load();
  return getx(n, (b, s) => n.fgetxattr(fd, name, b, s), name, path);
}

/** flistxattr(2): the attribute names of an open (not O_PATH) fd. */
export function flistxattr(fd: number, path?: string): string[] {
  const n = load();
  return listx(n, (b, s) => n.flistxattr(fd, b, s), path);
}

/** lsetxattr(2): never follows a symlink at the final component. */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  const n = load();
  check(n, n.lsetxattr(path, name, value, value.length, 0), `setxattr ${name}`, path);
}

/** lgetxattr(2): the value, or undefined when there is no such attribute (ENODATA). */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  const n = load();
  return getx(n, (b, s) => n.lgetxattr(path, name, b, s), name, path);
}

/** llistxattr(2): the attribute names of `path` itself (a symlink is not followed). */
export function llistxattr(path: string): string[] {
  const n = load();
  return listx(n, (b, s) => n.llistxattr(path, b, s), path);
}

const ENODATA = 61;
const ERANGE = 34;

function getx(
  n: Native,
  call: (buf: Buffer | null, size: number) => number | bigint,
  name: string,
  path?: string,
): Buffer | undefined {
  for (;;) {
    const size = Number(call(null, 0));
    if (size < 0) {
      const e = n.errno();
      if (e === ENODATA) return undefined;
      throw new SysError(`getxattr ${name}`, e, path);
    }
    const buf = Buffer.alloc(size);
    if (size === 0) return buf;
    const got = Number(call(buf, size));
    if (got >= 0) return buf.subarray(0, got);
    const e = n.errno();
    // the value grew between the two calls: ask again
    if (e === ERANGE) continue;
    if (e === ENODATA) return undefined;
    throw new SysError(`getxattr ${name}`, e, path);
  }
}

function listx(
  n: Native,
  call: (buf: Buffer | null, size: number) => number | bigint,
  path?: string,
): string[] {
  for (;;) {
    const size = Number(call(null, 0));
    if (size < 0) throw new SysError('listxattr', n.errno(), path);
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(call(buf, size));
    if (got < 0) {
      const e = n.errno();
      if (e === ERANGE) continue;
      throw new SysError('listxattr', e, path);
    }
    return buf
      .subarray(0, got)
      .toString('utf8')
      .split('\0')
      .filter((s) => s.length > 0);
  }
}
