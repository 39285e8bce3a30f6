import { emptyPlan, type Plan } from '../plan.js';
import type { LinuxCPU } from '../types.js';

export function planCpusetV2(cpu: LinuxCPU | undefined): Plan {
  const plan = emptyPlan();
  if (cpu?.cpus) {
    plan.writes.push({
      controller: 'cpuset',
      file: 'cpuset.cpus',
      value: cpu.cpus,
      field: 'linux.resources.cpu.cpus',
    });
  }
  if (cpu?.mems) {
    plan.writes.push({
      controller: 'cpuset',
      file: 'cpuset.mems',
      value: cpu.mems,
      field: 'linux.resources.cpu.mems',
    });
  }
  return plan;
}
