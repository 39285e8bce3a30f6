import { BerthError } from '@berth/sys';

export type CgroupErrorCode =
  | 'EINVALID'
  | 'ENOCONTROLLER'
  | 'EPATH'
  | 'ESYSTEMD'
  | 'ENOTFOUND'
  | 'EIO'
  | 'EBUSY'
  | 'ETIMEDOUT'
  | 'EBPF'
  | 'ENOCGROUPFS';

export interface CgroupProblem {
  /** JSON path, e.g. `linux.resources.memory.swap` */
  path: string;
  message: string;
}

export interface CgroupErrorInit {
  code: CgroupErrorCode;
  op: string;
  message: string;
  path?: string;
  errno?: string;
  problems?: CgroupProblem[];
  cause?: unknown;
}

/** Every failure of this package is a CgroupError: callers switch on `code`, users read `message`. */
export class CgroupError extends BerthError {
  declare readonly code: CgroupErrorCode;
  declare readonly op: string;
  readonly problems: CgroupProblem[];

  constructor(init: CgroupErrorInit) {
    super(init.message, {
      code: init.code,
      op: init.op,
      ...(init.path !== undefined ? { path: init.path } : {}),
      ...(init.errno !== undefined ? { errno: init.errno } : {}),
      ...(init.cause !== undefined ? { cause: init.cause } : {}),
    });
    this.name = 'CgroupError';
    this.problems = init.problems ?? [];
  }

  override toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      op: this.op,
      path: this.path,
      errno: this.errno,
      message: this.message,
      problems: this.problems.length > 0 ? this.problems : undefined,
    };
  }
}

export function formatProblems(problems: CgroupProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('; ');
}

export function invalid(op: string, problems: CgroupProblem[]): CgroupError {
  return new CgroupError({ code: 'EINVALID', op, message: formatProblems(problems), problems });
}

export function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Whether `err` says the cgroup is no longer there: its directory is gone (ENOENT), or was
 * removed between opening one of its files and writing it (ENODEV). A cgroup whose owner
 * removes it once it is empty (systemd, a scope) may go at any moment after its last process.
 */
export function cgroupGone(err: unknown): boolean {
  const errno = err instanceof CgroupError ? err.errno : errnoOf(err);
  return errno === 'ENOENT' || errno === 'ENODEV';
}
