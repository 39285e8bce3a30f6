export { type ArchiveSource, openArchive, type SourceFile } from './archive-source.js';
export {
  type Challenge,
  type Credentials,
  credentialsFromDockerConfig,
  defaultDockerConfigPath,
  parseChallenge,
  TokenCache,
} from './auth.js';
export {
  authFiles,
  type CredentialOptions,
  defaultAuthFile,
  findCredentials,
  normalizeAuthKey,
  removeCredentials,
  runCredentialHelper,
  saveCredentials,
} from './credentials.js';
export { decompress, sniffCompression } from './decompress.js';
export { assertDigest, digestHex, sha256, verifyBuffer } from './digest.js';
export { loadDockerArchive, saveDockerArchive } from './docker-archive.js';
export { ImageError, type ImageErrorCode, type ImageErrorDetails } from './errors.js';
export type { ProgressListener, PullEvent } from './events.js';
export {
  ANNOTATION_IMAGE_NAME,
  ANNOTATION_REF_NAME,
  type ArchiveFormat,
  type ExportOptions,
  exportLayout,
  type ImportOptions,
  importLayout,
  recordImage,
} from './layout.js';
export { type Compression, compressionOf, isIndexType, isManifestType, MediaType } from './media-types.js';
export { formatPlatform, hostPlatform, parsePlatform, selectPlatform } from './platform.js';
export { formatBytes, PullProgress, type PullProgressOptions, renderPullProgress } from './progress.js';
export type { PullOptions } from './pull.js';
export {
  DEFAULT_REGISTRY,
  DEFAULT_TAG,
  familiarName,
  formatReference,
  isLoopbackRegistry,
  parseReference,
  type Reference,
  registryApiHost,
  repositoryName,
} from './reference.js';
export {
  findRegistry,
  isShortName,
  loadRegistriesConfig,
  type MirrorConfig,
  type PullEndpoint,
  type PullFromMirror,
  parseRegistriesConfig,
  pullEndpoints,
  type RegistriesConfig,
  type RegistryConfig,
  registryInsecure,
  resolveShortName,
  type ShortNameMode,
  type ShortNameResolution,
} from './registries-conf.js';
export {
  type Action,
  type BlobResponse,
  type FetchedManifest,
  RegistryClient,
  type RegistryClientOptions,
} from './registry.js';
export { certsDirs, type RegistrySettings } from './settings.js';
export {
  DEFAULT_STORE_ROOT,
  describeImage,
  ImageStore,
  type PruneOptions,
  type PruneResult,
  type RemoveOptions,
} from './store.js';
export { readTar, type TarEntry, type TarEntryType, type TarItem } from './tar/reader.js';
export { type TarHeader, type TarInput, tarHeader, writeTar } from './tar/writer.js';
export { loadTlsSettings, type TlsSettings } from './tls.js';
export { loadImages, saveImages } from './transfer.js';
export type {
  Descriptor,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  ImageRecord,
  ImageRunConfig,
  LayerRecord,
  Platform,
} from './types.js';
