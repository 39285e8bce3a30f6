export { parseIdMapping, validateIdMappings } from '@berth/namespaces';
export { BUILTIN_IMAGE, DEFAULT_IMAGE, type DefaultImage, ensureDefaultImage } from './builtin.js';
export { type CapabilitySets, capabilitySets, hostBoundingSet } from './caps.js';
export { DEFAULT_DEVICE_RULES, defaultCgroupsPath, effectiveResources } from './cgroup.js';
export { type ExecPlanContext, planExec } from './exec.js';
export { features, supportedMountOptions } from './features.js';
export { type HookState, runHooks } from './hooks.js';
export {
  type ImageBundle,
  type ImageRunOptions,
  makeImageBundle,
  randomId,
  resolveImage,
} from './image-bundle.js';
export { ContainerLock, withLock } from './lock.js';
export {
  attachNetwork,
  type ContainerNetworkOptions,
  checkNetworkOptions,
  detachNetwork,
  type NetworkRecord,
} from './network.js';
export { processesInPidNamespace } from './pidns.js';
export {
  type ContainerPlan,
  type PlanContext,
  planContainer,
  planProcess,
  SYNC_NS_READY,
  SYNC_READY_TO_EXEC,
} from './plan.js';
export { type PoolOptions, type PreparedContainer, SandboxPool } from './pool.js';
export { isAlive, type ProcStat, parseSignal, procStat } from './proc.js';
export {
  askedLimit,
  defaultStateRoot,
  defaultStoreRoot,
  ensurePrivateDir,
  findIdmapTools,
  type IdmapWriter,
  isRootless,
  parseSubIds,
  type RootlessCgroup,
  type RootlessIds,
  readSubIds,
  rootlessCacheDir,
  rootlessCgroup,
  rootlessIdmapWriter,
  rootlessIds,
  rootlessMappings,
  rootlessSpecProblem,
  rootlessStateRoot,
  rootlessStoreRoot,
  type SubIdRange,
  storeRoot,
  toRootlessSpec,
} from './rootless.js';
export {
  type ContainerState,
  type CreateOptions,
  DEFAULT_ROOT,
  type ExecOptions,
  type NamespaceKind,
  type RunOptions,
  Runtime,
  type RuntimeOptions,
  type Stdio,
} from './runtime.js';
export {
  checkLinuxSupport,
  checkSelinuxContext,
  compileProfile,
  hostLsms,
  type ProcessSecurity,
  planProcessSecurity,
  planTimeNamespace,
  type SecurityContext,
  seccompListener,
} from './security.js';
export { type ContainerRecord, StateStore, type Status, validateId } from './state.js';
export {
  ANNOTATION_HOST_ROOT,
  ANNOTATION_ROOTFS_IDMAP,
  AUTO_RANGE_BASE,
  AUTO_RANGE_SIZE,
  adaptRootfsForUserns,
  allocateAutoRange,
  type IdmappedMountsPlan,
  planIdmappedMounts,
  planUserns,
  resolveUsernsRequest,
  type UsernsConfig,
  type UsernsPlan,
  type UsernsRequest,
  usernsConfig,
  withUserns,
} from './userns.js';
