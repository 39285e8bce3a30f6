import type { CgroupProblem } from './errors.js';

/** One file write in a cgroup, planned before anything touches the host. */
export interface Write {
  /** v1: the hierarchy to write in; v2: the controller that must be enabled (`cgroup` for core files) */
  controller: string;
  file: string;
  value: string;
  /** the OCI field this write comes from, for error messages */
  field: string;
  /** keyed files (one line per device/key): rollback restores just this key */
  key?: string;
  /** what to write to drop this key again when rolling back a key that did not exist before */
  reset?: string;
  /** tried in order when `file` does not exist (blkio.weight vs blkio.bfq.weight) */
  alternatives?: { file: string; value: string }[];
  /** deprecated knobs the kernel may have dropped: skip quietly when absent */
  optional?: boolean;
  /** an EINVAL is not an error: the same value is written again later in the plan (v1's period before and after the quota) */
  retriedLater?: boolean;
}

export interface Plan {
  writes: Write[];
  problems: CgroupProblem[];
}

export function emptyPlan(): Plan {
  return { writes: [], problems: [] };
}

export function mergePlans(...plans: Plan[]): Plan {
  return {
    writes: plans.flatMap((p) => p.writes),
    problems: plans.flatMap((p) => p.problems),
  };
}

/** Hugepage sizes as the kernel names them in cgroup files: 2048kB -> 2MB. */
export function hugepageSizeName(kb: number): string {
  const units = ['KB', 'MB', 'GB', 'TB'];
  let n = kb;
  let i = 0;
  while (n >= 1024 && n % 1024 === 0 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n}${units[i]}`;
}
