import type { ImageRecord } from './types.js';

/**
 * What pulling and archive loading need of a content store. ImageStore
 * implements it; depending on this instead of on ImageStore keeps the
 * dependencies one way: store -> pull -> blob-store (no store <-> pull cycle).
 */
export interface BlobStore {
  /** the store's directory */
  readonly root: string;
  blobPath(digest: string): string;
  partialPath(digest: string): string;
  lockPath(digest: string): string;
  hasBlob(digest: string, size?: number): Promise<boolean>;
  readBlob(digest: string): Promise<Buffer>;
  writeBlob(data: Uint8Array, expected?: string): Promise<string>;
  putRecord(record: ImageRecord): Promise<void>;
  referencedDigests(): Promise<Set<string>>;
  /** keeps `digests` from a concurrent prune until the returned function is called */
  lease(digests: Iterable<string>): Promise<() => Promise<void>>;
}
