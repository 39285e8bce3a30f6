export { type ApplyOptions, Cgroup, type CgroupOptions } from './cgroup.js';
export {
  blkioWeightToIoWeight,
  cpuMaxValue,
  cpuSharesToWeight,
  cpuSharesToWeightLinear,
  memorySwapToV2,
} from './convert.js';
export { type CgroupHierarchy, detectCgroupLayout, discoverHierarchy, parseCgroupMounts } from './detect.js';
export {
  CgroupError,
  type CgroupErrorCode,
  type CgroupErrorInit,
  type CgroupProblem,
  cgroupGone,
  formatProblems,
} from './errors.js';
export {
  expandSlice,
  type ResolvedPath,
  type ResolvePathOptions,
  resolveCgroupsPath,
  systemdUnitName,
} from './path.js';
export type { Plan, Write } from './plan.js';
export { type CgroupStats, type IoEntry, type MemoryEntry, toRuncStats } from './stats.js';
export {
  defaultSlice,
  isManagerRunning,
  outerUid,
  type SystemdManager,
  systemdManager,
} from './systemd/manager.js';
export {
  cpuMask,
  type StartScopeOptions,
  scopeOf,
  scopeResourceProperties,
  scopeState,
  setScopeResources,
  startScope,
  stopScope,
  systemdManagerCgroup,
  systemdSocket,
} from './systemd/scope.js';
export type * from './types.js';
export { planV1, type V1PlanInput } from './v1/plan.js';
export { assembleDeviceProgram, type BpfInsn, encodeProgram, runDeviceProgram } from './v2/device-program.js';
export { planV2 } from './v2/plan.js';
export { unknownResourceFields, validateResources } from './validate.js';
