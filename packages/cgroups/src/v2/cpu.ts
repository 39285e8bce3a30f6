import { cpuMaxValue, cpuSharesToWeight } from '../convert.js';
import { parseKeyValues, readOptional } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { CgroupStats } from '../stats.js';
import type { LinuxCPU } from '../types.js';

const F = 'linux.resources.cpu';

export function planCpuV2(cpu: LinuxCPU | undefined): Plan {
  const plan = emptyPlan();
  if (!cpu) return plan;
  if (cpu.shares !== undefined && cpu.shares !== 0) {
    plan.writes.push({
      controller: 'cpu',
      file: 'cpu.weight',
      value: String(cpuSharesToWeight(cpu.shares)),
      field: `${F}.shares`,
    });
  }
  const max = cpuMaxValue(cpu.quota, cpu.period);
  if (max !== undefined) {
    plan.writes.push({ controller: 'cpu', file: 'cpu.max', value: max, field: `${F}.quota` });
  }
  if (cpu.burst !== undefined) {
    plan.writes.push({
      controller: 'cpu',
      file: 'cpu.max.burst',
      value: String(cpu.burst),
      field: `${F}.burst`,
    });
  }
  if (cpu.idle !== undefined) {
    plan.writes.push({ controller: 'cpu', file: 'cpu.idle', value: String(cpu.idle), field: `${F}.idle` });
  }
  for (const k of ['realtimeRuntime', 'realtimePeriod'] as const) {
    if (cpu[k] !== undefined && cpu[k] !== 0) {
      plan.problems.push({
        path: `${F}.${k}`,
        message: 'realtime scheduling limits are not supported on cgroup v2',
      });
    }
  }
  return plan;
}

/** cpu.stat exists even without the cpu controller enabled (usage only). */
export async function readCpuStatsV2(dir: string, out: CgroupStats): Promise<void> {
  const s = parseKeyValues(await readOptional(dir, 'cpu.stat'));
  out.cpu = {
    usage: {
      total: (s['usage_usec'] ?? 0) * 1000,
      user: (s['user_usec'] ?? 0) * 1000,
      kernel: (s['system_usec'] ?? 0) * 1000,
      perCpu: [],
      perCpuKernel: [],
      perCpuUser: [],
    },
    throttling: {
      periods: s['nr_periods'] ?? 0,
      throttledPeriods: s['nr_throttled'] ?? 0,
      throttledTime: (s['throttled_usec'] ?? 0) * 1000,
    },
  };
}
