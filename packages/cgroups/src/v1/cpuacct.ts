import { parseUint, readOptional } from '../fsutil.js';
import type { CgroupStats } from '../stats.js';

const numbers = (text: string | undefined): number[] =>
  (text ?? '')
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);

/** cpuacct only reports; all values are nanoseconds. */
export async function readCpuacctStatsV1(dir: string, out: CgroupStats): Promise<void> {
  const [total, user, sys, percpu, percpuUser, percpuSys] = await Promise.all([
    readOptional(dir, 'cpuacct.usage'),
    readOptional(dir, 'cpuacct.usage_user'),
    readOptional(dir, 'cpuacct.usage_sys'),
    readOptional(dir, 'cpuacct.usage_percpu'),
    readOptional(dir, 'cpuacct.usage_percpu_user'),
    readOptional(dir, 'cpuacct.usage_percpu_sys'),
  ]);
  out.cpu.usage = {
    total: parseUint(total),
    user: parseUint(user),
    kernel: parseUint(sys),
    perCpu: numbers(percpu),
    perCpuUser: numbers(percpuUser),
    perCpuKernel: numbers(percpuSys),
  };
}
