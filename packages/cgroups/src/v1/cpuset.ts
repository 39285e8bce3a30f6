import { dirname } from 'node:path';
import { readCgroupFile, writeCgroupFile } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { LinuxCPU } from '../types.js';

export function planCpusetV1(cpu: LinuxCPU | undefined): Plan {
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

/**
 * A new v1 cpuset starts with empty cpus/mems and refuses tasks (ENOSPC), so
 * copy the parent's values down from the first ancestor that has them.
 */
export async function initCpusetV1(mount: string, dir: string): Promise<void> {
  if (dir === mount || !dir.startsWith(`${mount}/`)) return;
  const parent = dirname(dir);
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    const own = (await readCgroupFile(dir, file)).trim();
    if (own !== '') continue;
    let value = (await readCgroupFile(parent, file)).trim();
    if (value === '') {
      await initCpusetV1(mount, parent);
      value = (await readCgroupFile(parent, file)).trim();
    }
    await writeCgroupFile(dir, file, value);
  }
}
