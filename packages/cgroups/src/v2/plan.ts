import { planPids } from '../pids.js';
import { mergePlans, type Plan } from '../plan.js';
import { planRdma } from '../rdma.js';
import type { LinuxResources } from '../types.js';
import { planCpuV2 } from './cpu.js';
import { planCpusetV2 } from './cpuset.js';
import { planHugetlbV2 } from './hugetlb.js';
import { planIoV2 } from './io.js';
import { planMemoryV2 } from './memory.js';
import { planUnified } from './unified.js';

/** File writes for v2; devices are an eBPF program and are handled apart. */
export function planV2(r: LinuxResources): Plan {
  const plan = mergePlans(
    planMemoryV2(r.memory),
    planCpusetV2(r.cpu),
    planCpuV2(r.cpu),
    planPids(r.pids),
    planIoV2(r.blockIO),
    planHugetlbV2(r.hugepageLimits),
    planRdma(r.rdma),
    planUnified(r.unified),
  );
  if (r.blockIO?.leafWeight !== undefined && r.blockIO.leafWeight !== 0) {
    plan.problems.push({
      path: 'linux.resources.blockIO.leafWeight',
      message: 'is not supported on cgroup v2',
    });
  }
  if (r.network?.classID !== undefined || (r.network?.priorities?.length ?? 0) > 0) {
    plan.problems.push({
      path: 'linux.resources.network',
      message: 'net_cls/net_prio are cgroup v1 controllers and do not exist on cgroup v2',
    });
  }
  return plan;
}
