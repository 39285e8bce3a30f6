import { planPids } from '../pids.js';
import { mergePlans, type Plan } from '../plan.js';
import { planRdma } from '../rdma.js';
import type { LinuxResources } from '../types.js';
import { planBlkioV1 } from './blkio.js';
import { planCpuV1 } from './cpu.js';
import { planCpusetV1 } from './cpuset.js';
import { planDevicesV1 } from './devices.js';
import { planHugetlbV1 } from './hugetlb.js';
import { planMemoryV1 } from './memory.js';
import { planNetClsV1 } from './net_cls.js';
import { planNetPrioV1 } from './net_prio.js';

export interface V1PlanInput {
  /** current memory.limit_in_bytes, which decides the memory/memsw write order */
  currentMemoryLimit?: number;
}

/** Everything v1 can express. `unified` and (on hybrid hosts) hugetlb are planned by the caller. */
export function planV1(
  r: LinuxResources,
  input: V1PlanInput = {},
  opts: { hugetlb: boolean } = { hugetlb: true },
): Plan {
  return mergePlans(
    planDevicesV1(r.devices),
    planMemoryV1(r.memory, input.currentMemoryLimit),
    planCpusetV1(r.cpu),
    planCpuV1(r.cpu),
    planPids(r.pids),
    planBlkioV1(r.blockIO),
    opts.hugetlb ? planHugetlbV1(r.hugepageLimits) : { writes: [], problems: [] },
    planNetClsV1(r.network),
    planNetPrioV1(r.network),
    planRdma(r.rdma),
  );
}
