export { parseMountOptions, propagationFlags, type ParsedMountOptions } from './options.js';
export { resolveInRoot } from './resolve.js';
export {
  planRootfs,
  DEFAULT_DEVICES,
  DEV_SYMLINKS,
  type RootfsConfig,
  type MountEntry,
  type DeviceEntry,
} from './mounts.js';
export * from './image.js';
