import { emptyPlan, type Plan } from '../plan.js';
import type { LinuxNetwork } from '../types.js';

export function planNetClsV1(net: LinuxNetwork | undefined): Plan {
  const plan = emptyPlan();
  if (net?.classID !== undefined) {
    plan.writes.push({
      controller: 'net_cls',
      file: 'net_cls.classid',
      value: String(net.classID),
      field: 'linux.resources.network.classID',
    });
  }
  return plan;
}
