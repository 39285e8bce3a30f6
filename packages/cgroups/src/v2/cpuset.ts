import { planCpusetV1 } from '../v1/cpuset.js';

/** cpuset.cpus and cpuset.mems have the same names and formats in v1 and v2. */
export const planCpusetV2 = planCpusetV1;
