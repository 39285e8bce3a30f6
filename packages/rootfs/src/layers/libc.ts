import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { ImageRootfsError } from './errors.js';

// Node has no mknod or xattr calls. These few bindings load koffi lazily so that importing @berth/rootfs stays
// cheap for the CLI; @berth/sys will own them once its libc layer exists.
interface Libc {
  mknod(path: string, mode: number, dev: bigint): number;
  lsetxattr(path: string, name: string, value: Buffer, size: number, flags: number): number;
  lgetxattr(path: string, name: string, value: Buffer | null, size: number): number;
  llistxattr(path: string, list: Buffer | null, size: number): number;
  errno(): number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc !== undefined) return libc;
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as {
    load(name: string): { func(sig: string): (...args: unknown[]) => number };
    errno(): number;
  };
  const lib = koffi.load('libc.so.6');
  const mknod = lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
  const lsetxattr = lib.func(
    'int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)',
  );
  const lgetxattr = lib.func(
    'intptr_t lgetxattr(const char *path, const char *name, _Out_ void *value, size_t size)',
  );
  const llistxattr = lib.func('intptr_t llistxattr(const char *path, _Out_ char *list, size_t size)');
  libc = {
    mknod: (p, m, d) => mknod(p, m, d),
    lsetxattr: (p, n, v, s, f) => lsetxattr(p, n, v, s, f),
    lgetxattr: (p, n, v, s) => lgetxattr(p, n, v, s),
    llistxattr: (p, l, s) => llistxattr(p, l, s),
    errno: () => koffi.errno(),
  };
  return libc;
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([k, v]) => [v, k]));

function fail(op: string, path: string, errno: number): never {
  const name = ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
  throw new ImageRootfsError('ESYSCALL', `${op} ${path}: ${name}`, { op, path, errno: name });
}

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** glibc's makedev: the 12/20-bit major and 8/24-bit minor split of a 64-bit dev_t. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  const l = load();
  if (l.mknod(path, mode, makedev(major, minor)) !== 0) fail('mknod', path, l.errno());
}

export function lsetxattr(path: string, name: string, value: Buffer): void {
  const l = load();
  if (l.lsetxattr(path, name, value, value.length, 0) !== 0) fail(`setxattr ${name}`, path, l.errno());
}

export function llistxattr(path: string): string[] {
  const l = load();
  const size = l.llistxattr(path, null, 0);
  if (size < 0) {
    const e = l.errno();
    if (ERRNO_NAMES.get(e) === 'ENOTSUP') return [];
    fail('listxattr', path, e);
  }
  if (size === 0) return [];
  const buf = Buffer.alloc(size);
  const n = l.llistxattr(path, buf, size);
  if (n < 0) fail('listxattr', path, l.errno());
  return buf
    .subarray(0, n)
    .toString('utf8')
    .split('\0')
    .filter((s) => s.length > 0);
}

export function lgetxattr(path: string, name: string): Buffer | undefined {
  const l = load();
  const size = l.lgetxattr(path, name, null, 0);
  if (size < 0) {
    const e = ERRNO_NAMES.get(l.errno());
    if (e === 'ENODATA' || e === 'ENOTSUP') return undefined;
    fail(`getxattr ${name}`, path, l.errno());
  }
  const buf = Buffer.alloc(size);
  const n = l.lgetxattr(path, name, buf, size);
  if (n < 0) fail(`getxattr ${name}`, path, l.errno());
  return buf.subarray(0, n);
}
