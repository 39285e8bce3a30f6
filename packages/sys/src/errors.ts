import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** The symbolic name of an errno number (`1` → `EPERM`); `E<n>` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** The errno number of a symbolic name (`EPERM` → `1`), or undefined. */
export function errnoNumber(name: string): number | undefined {
  return (constants.errno as Record<string, number>)[name];
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
  ETXTBSY: 'text file busy',
  ECANCELED: 'operation canceled',
};

/** A short lowercase description of an errno (`EPERM` → `operation not permitted`). */
export function strerror(errno: number): string {
  return messages[errnoName(errno)] ?? `errno ${Math.abs(errno)}`;
}
