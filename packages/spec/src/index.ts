export {
  CAPABILITIES,
  HOOK_NAMES,
  IOPRIO_CLASSES,
  MEMORY_POLICY_FLAGS,
  MEMORY_POLICY_MODES,
  NAMESPACE_TYPES,
  OCI_VERSION,
  RLIMITS,
  ROOTFS_PROPAGATIONS,
  SCHEDULER_FLAGS,
  SCHEDULER_POLICIES,
  SECCOMP_ACTIONS,
  SECCOMP_ARCHES,
  SECCOMP_FLAGS,
  SECCOMP_OPERATORS,
} from './constants.js';
export { type DefaultSpecOptions, defaultSpec } from './defaults.js';
export { formatProblems, SpecError } from './errors.js';
export { formatSpec } from './format.js';
export { findJsonSyntaxError, type JsonSyntaxError } from './json-syntax.js';
export { normalizeProcess, normalizeSpec, parseSpec } from './parse.js';
export type * from './types.js';
export { validateSpec } from './validate.js';
export { validateResources } from './validate-resources.js';
