import { errnoOfError, hasErrno, errnoName as sysErrnoName } from '@berth/sys';

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
export class ImageRootfsError extends Error {
  readonly code: ImageRootfsErrorCode;
  readonly op: string;
  readonly path: string | undefined;
  readonly errno: string | undefined;

  constructor(code: ImageRootfsErrorCode, message: string, details: ImageRootfsErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ImageRootfsError';
    this.code = code;
    this.op = details.op;
    this.path = details.path;
    this.errno = details.errno ?? errnoName(details.cause);
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
