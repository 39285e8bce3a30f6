import { parseKeyValues, readOptional } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { CgroupStats } from '../stats.js';
import type { LinuxCPU } from '../types.js';

const F = 'linux.resources.cpu';

/**
 * Period before quota and burst after it, the order the kernel's consistency checks accept
 * (runc). A new period with the old quota can exceed a parent's quota (EINVAL): with a quota
 * to write too, the period is written again after it, as runc does.
 */
export function planCpuV1(cpu: LinuxCPU | undefined): Plan {
  const plan = emptyPlan();
  if (!cpu) return plan;
  const w = (file: string, value: number, field: string, retriedLater = false) =>
    plan.writes.push({
      controller: 'cpu',
      file,
      value: String(value),
      field: `${F}.${field}`,
      ...(retriedLater ? { retriedLater } : {}),
    });
  if (cpu.shares !== undefined && cpu.shares !== 0) w('cpu.shares', cpu.shares, 'shares');
  const period = cpu.period !== undefined && cpu.period !== 0 ? cpu.period : undefined;
  const quota = cpu.quota !== undefined && cpu.quota !== 0 ? cpu.quota : undefined;
  if (period !== undefined) w('cpu.cfs_period_us', period, 'period', quota !== undefined);
  if (quota !== undefined) w('cpu.cfs_quota_us', quota, 'quota');
  if (period !== undefined && quota !== undefined) w('cpu.cfs_period_us', period, 'period');
  if (cpu.burst !== undefined) w('cpu.cfs_burst_us', cpu.burst, 'burst');
  if (cpu.realtimePeriod !== undefined && cpu.realtimePeriod !== 0) {
    w('cpu.rt_period_us', cpu.realtimePeriod, 'realtimePeriod');
  }
  if (cpu.realtimeRuntime !== undefined && cpu.realtimeRuntime !== 0) {
    w('cpu.rt_runtime_us', cpu.realtimeRuntime, 'realtimeRuntime');
  }
  if (cpu.idle !== undefined) w('cpu.idle', cpu.idle, 'idle');
  return plan;
}

export async function readCpuThrottlingV1(dir: string, out: CgroupStats): Promise<void> {
  const stat = parseKeyValues(await readOptional(dir, 'cpu.stat'));
  out.cpu.throttling = {
    periods: stat['nr_periods'] ?? 0,
    throttledPeriods: stat['nr_throttled'] ?? 0,
    throttledTime: stat['throttled_time'] ?? 0,
  };
}
