import { constants } from 'node:os';

/**
 * The one errno table of berth. Linux gives some numbers two names (95 is both `EOPNOTSUPP` and `ENOTSUP`, 11
 * `EAGAIN` and `EWOULDBLOCK`, 35 `EDEADLK` and `EDEADLOCK`): a number is always *printed* with the name the
 * kernel headers use first, and every check compares numbers, so `hasErrno(err, 'ENOTSUP')` matches an
 * error named `EOPNOTSUPP` (and Node's `ENOTSUP`) alike.
 */
const PREFERRED: Record<number, string> = { 11: 'EAGAIN', 35: 'EDEADLK', 95: 'EOPNOTSUPP' };
const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, PREFERRED[value] ?? name);
}

/** The symbolic name of an errno number (`1` → `EPERM`, `95` → `EOPNOTSUPP`); `E<n>` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** The errno number of a symbolic name (`EPERM` → `1`; `ENOTSUP` and `EOPNOTSUPP` → `95`), or undefined. */
export function errnoNumber(name: string): number | undefined {
  return (constants.errno as Record<string, number>)[name];
}

/**
 * The errno number an error carries, whatever raised it: a `SysError`, a `BerthError` (or any error) with an
 * `errno` name, or a Node.js system error (`code: 'ENOTSUP'`, `errno: -95`). Undefined when there is none.
 */
export function errnoOfError(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  if (err instanceof SysError) return err.errnoNumber;
  const e = err as { errno?: unknown; code?: unknown };
  if (typeof e.errno === 'number' && e.errno !== 0) return Math.abs(e.errno);
  if (typeof e.errno === 'string') {
    const n = errnoNumber(e.errno);
    if (n !== undefined) return n;
  }
  if (typeof e.code === 'string') return errnoNumber(e.code);
  return undefined;
}

/**
 * Whether `err` carries one of these errnos, compared by number: the one way berth checks an errno.
 * `hasErrno(err, 'ENOTSUP')` is true for EOPNOTSUPP too (both are 95 on Linux).
 */
export function hasErrno(err: unknown, ...names: string[]): boolean {
  const n = errnoOfError(err);
  if (n === undefined) return false;
  return names.some((name) => errnoNumber(name) === n);
}

export interface BerthErrorFields {
  /** A stable machine-readable code, e.g. `EMOUNT`, `ENOTFOUND`, `EINVALIDSPEC`. */
  code: string;
  /** What was being done, in the user's terms: `mount`, `setns`, `create container`. */
  op?: string;
  /** The path (or id) the operation was about. */
  path?: string;
  /** The errno name from the kernel, when there was one. */
  errno?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * The one error type of berth: a code, the operation, the path and the errno,
 * with a message a user can act on. The CLI prints `message`; `--log-format json`
 * prints `toJSON()`.
 */
export class BerthError extends Error {
  readonly code: string;
  readonly op: string | undefined;
  readonly path: string | undefined;
  readonly errno: string | undefined;

  constructor(message: string, fields: BerthErrorFields) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'BerthError';
    this.code = fields.code;
    this.op = fields.op;
    this.path = fields.path;
    this.errno = fields.errno;
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.op !== undefined) out['op'] = this.op;
    if (this.path !== undefined) out['path'] = this.path;
    if (this.errno !== undefined) out['errno'] = this.errno;
    return out;
  }
}

/** A failed system call, described as `op path: ERRNO (text)`. */
export class SysError extends BerthError {
  readonly errnoNumber: number;

  constructor(op: string, errno: number, path?: string, code = 'ESYSCALL') {
    const name = errnoName(errno);
    super(`${op}${path === undefined ? '' : ` ${path}`}: ${name} (${strerror(errno)})`, {
      code,
      op,
      ...(path === undefined ? {} : { path }),
      errno: name,
    });
    this.name = 'SysError';
    this.errnoNumber = Math.abs(errno);
  }
}

const messages: Record<string, string> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ESRCH: 'no such process',
  EINTR: 'interrupted system call',
  EIO: 'input/output error',
  E2BIG: 'argument list too long',
  ENOEXEC: 'exec format error',
  EBADF: 'bad file descriptor',
  ECHILD: 'no child processes',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'cannot allocate memory',
  EACCES: 'permission denied',
  EBUSY: 'device or resource busy',
  EEXIST: 'file exists',
  EXDEV: 'invalid cross-device link',
  ENODEV: 'no such device',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  EINVAL: 'invalid argument',
  EMFILE: 'too many open files',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  ENAMETOOLONG: 'file name too long',
  ENOSYS: 'function not implemented',
  ENOTEMPTY: 'directory not empty',
  ELOOP: 'too many levels of symbolic links',
  EOPNOTSUPP: 'operation not supported',
  ENODATA: 'no data available',
  EFAULT: 'bad address',
  ETXTBSY: 'text file busy',
  ECANCELED: 'operation canceled',
};

/** A short lowercase description of an errno (`EPERM` → `operation not permitted`). */
export function strerror(errno: number): string {
  return messages[errnoName(errno)] ?? `errno ${Math.abs(errno)}`;
}
