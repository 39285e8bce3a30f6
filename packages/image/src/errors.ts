import { BerthError } from '@berth/sys';
export type ImageErrorCode =
  | 'EREF'
  | 'EAUTH'
  | 'EREGISTRY'
  | 'ENOTFOUND'
  | 'EDIGEST'
  | 'ESIZE'
  | 'EDIFFID'
  | 'EPLATFORM'
  | 'EMANIFEST'
  | 'ETAR'
  | 'EDECOMPRESS'
  | 'ESTORE'
  | 'EINUSE'
  | 'EARCHIVE'
  | 'EABORT'
  | 'ECONFIG'
  | 'ETLS'
  | 'EBLOCKED';

export interface ImageErrorDetails {
  /** what berth was doing: 'pull', 'fetch manifest', 'verify blob', 'read tar' */
  op: string;
  /** a path or URL the operation was about */
  path?: string;
  /** the errno name when a syscall failed (ENOENT, EACCES) */
  errno?: string;
  /** the HTTP status when a registry answered */
  status?: number;
  cause?: unknown;
}

/** Every failure of @berth/image: a code a program can switch on and a message a user can act on. */
export class ImageError extends BerthError {
  declare readonly code: ImageErrorCode;
  declare readonly op: string;
  readonly status: number | undefined;

  constructor(code: ImageErrorCode, message: string, details: ImageErrorDetails) {
    const errno = details.errno ?? errnoOf(details.cause);
    super(message, {
      code,
      op: details.op,
      ...(details.path !== undefined ? { path: details.path } : {}),
      ...(errno !== undefined ? { errno } : {}),
      ...(details.cause !== undefined ? { cause: details.cause } : {}),
    });
    this.name = 'ImageError';
    this.status = details.status;
  }

  override toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      op: this.op,
      path: this.path,
      errno: this.errno,
      status: this.status,
      message: this.message,
    };
  }
}

export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}

export function isErrno(err: unknown, code: string): boolean {
  return errnoOf(err) === code;
}
