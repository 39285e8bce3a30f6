import { emptyPlan, type Plan } from './plan.js';
import type { LinuxRdma } from './types.js';

/** rdma.max has the same syntax on v1 and v2: `mlx4_0 hca_handle=2 hca_object=max`. */
export function planRdma(rdma: Record<string, LinuxRdma> | undefined): Plan {
  const plan = emptyPlan();
  for (const [dev, limits] of Object.entries(rdma ?? {})) {
    const parts: string[] = [];
    if (limits.hcaHandles !== undefined) parts.push(`hca_handle=${limits.hcaHandles}`);
    if (limits.hcaObjects !== undefined) parts.push(`hca_object=${limits.hcaObjects}`);
    if (parts.length === 0) continue;
    plan.writes.push({
      controller: 'rdma',
      file: 'rdma.max',
      value: `${dev} ${parts.join(' ')}`,
      key: dev,
      reset: `${dev} hca_handle=max hca_object=max`,
      field: `linux.resources.rdma[${JSON.stringify(dev)}]`,
    });
  }
  return plan;
}
