import { BerthError, errnoOfError, hasErrno, errnoName as sysErrnoName } from '@berth/sys';

export type ImageRootfsErrorCode =
  | 'EUNSAFE'
  | 'EUNPACK'
  | 'ELIMIT'
  | 'ESNAPSHOT'
  | 'EMOUNT'
  | 'EBUNDLE'
  | 'ESYSCALL';

export interface ImageRootfsErrorDetails {
  op: string;
  path?: string;
  errno?: string;
  cause?: unknown;
}

/** Failures of layer unpack, snapshots and image bundles: a code, the operation, the path and errno. */
export class ImageRootfsError extends BerthError {
  declare readonly code: ImageRootfsErrorCode;
  declare readonly op: string;

  constructor(code: ImageRootfsErrorCode, message: string, details: ImageRootfsErrorDetails) {
    const errno = details.errno ?? errnoName(details.cause);
    super(message, {
      code,
      op: details.op,
      ...(details.path !== undefined ? { path: details.path } : {}),
      ...(errno !== undefined ? { errno } : {}),
      ...(details.cause !== undefined ? { cause: details.cause } : {}),
    });
    this.name = 'ImageRootfsError';
  }
}

/** The errno name an error carries (from @berth/sys' one errno table), or undefined. */
export function errnoName(err: unknown): string | undefined {
  const n = errnoOfError(err);
  return n === undefined ? undefined : sysErrnoName(n);
}

/** Compared by number: `isErrno(err, 'ENOTSUP')` matches EOPNOTSUPP too. */
export function isErrno(err: unknown, code: string): boolean {
  return hasErrno(err, code);
}
