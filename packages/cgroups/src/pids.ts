import { parseUint, readOptional } from './fsutil.js';
import { emptyPlan, type Plan } from './plan.js';
import type { CgroupStats } from './stats.js';
import type { LinuxPids } from './types.js';

/**
 * Shared by v1 and v2: the pids files are the same in both. 0 leaves the limit alone, as runc
 * before 1.4 and crun do: podman before 5.4.1 sends 0 for `--pids-limit -1` (runc 1.4 reads
 * it as a limit of 1, which would leave such a container unable to fork).
 */
export function planPids(pids: LinuxPids | undefined): Plan {
  const plan = emptyPlan();
  const limit = pids?.limit;
  if (limit === undefined || limit === 0) return plan;
  plan.writes.push({
    controller: 'pids',
    file: 'pids.max',
    value: limit < 0 ? 'max' : String(limit),
    field: 'linux.resources.pids.limit',
  });
  return plan;
}

export async function readPidsStats(dir: string, out: CgroupStats): Promise<void> {
  const [current, max] = await Promise.all([
    readOptional(dir, 'pids.current'),
    readOptional(dir, 'pids.max'),
  ]);
  out.pids = { current: parseUint(current), limit: parseUint(max, 0) };
}
