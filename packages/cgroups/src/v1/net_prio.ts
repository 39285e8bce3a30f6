import { emptyPlan, type Plan } from '../plan.js';
import type { LinuxNetwork } from '../types.js';

/** net_prio.ifpriomap takes one `ifname prio` pair per write. */
export function planNetPrioV1(net: LinuxNetwork | undefined): Plan {
  const plan = emptyPlan();
  (net?.priorities ?? []).forEach((p, i) => {
    plan.writes.push({
      controller: 'net_prio',
      file: 'net_prio.ifpriomap',
      value: `${p.name} ${p.priority}`,
      key: p.name,
      reset: `${p.name} 0`,
      field: `linux.resources.network.priorities[${i}]`,
    });
  });
  return plan;
}
