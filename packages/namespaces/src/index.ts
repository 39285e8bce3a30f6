export {
  formatIdMap,
  type IdMapping,
  type IdmapPlanOptions,
  MAX_ID_MAP_LINES,
  mapsRootToRoot,
  parseIdMapping,
  planIdmap,
  type SetgroupsMode,
  toContainerId,
  toHostId,
  validateIdMappings,
} from './idmap.js';
export { isolatedKinds, type NamespaceId, namespaceOf, namespacePath, namespacesOf } from './inspect.js';
export { isNamespaceKind, JOIN_ORDER, NAMESPACES, type NamespaceInfo, type NamespaceKind } from './kinds.js';
export { type NamespacePlan, type NamespaceRequest, planNamespaces } from './plan.js';
