export * from './image.js';
export {
  DEFAULT_DEVICES,
  DEV_SYMLINKS,
  type DeviceEntry,
  type MountEntry,
  planRootfs,
  type RootfsConfig,
} from './mounts.js';
export { type ParsedMountOptions, parseMountOptions, propagationFlags } from './options.js';
export { resolveInRoot } from './resolve.js';
