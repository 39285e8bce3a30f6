export { NAMESPACES, JOIN_ORDER, type NamespaceInfo, type NamespaceKind, isNamespaceKind } from './kinds.js';
export { planNamespaces, type NamespacePlan, type NamespaceRequest } from './plan.js';
export { namespaceOf, namespacesOf, isolatedKinds, namespacePath, type NamespaceId } from './inspect.js';
export { formatIdMap, toHostId, type IdMapping } from './idmap.js';
