export {
  Runtime,
  DEFAULT_ROOT,
  type ContainerState,
  type CreateOptions,
  type RunOptions,
  type RuntimeOptions,
} from './runtime.js';
export { planContainer, type ContainerPlan, type PlanContext, SYNC_NS_READY, SYNC_READY_TO_EXEC } from './plan.js';
export { capabilitySets, hostBoundingSet, type CapabilitySets } from './caps.js';
export { StateStore, validateId, type ContainerRecord, type Status } from './state.js';
export { ContainerLock, withLock } from './lock.js';
export { parseSignal, procStat, isAlive } from './proc.js';
export { processesInPidNamespace } from './pidns.js';
export { runHooks, type HookState } from './hooks.js';
export { ensureDefaultImage, DEFAULT_IMAGE, type DefaultImage } from './builtin.js';
export { makeImageBundle, randomId, type ImageBundle, type ImageRunOptions } from './image-bundle.js';
