export type ImageRootfsErrorCode = 'EUNSAFE' | 'EUNPACK' | 'ESNAPSHOT' | 'EMOUNT' | 'EBUNDLE' | 'ESYSCALL';

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

export function errnoName(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}

export function isErrno(err: unknown, code: string): boolean {
  return errnoName(err) === code;
}
