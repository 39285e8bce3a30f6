export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** The `config` object of an image config (image-spec config.md). */
export interface ImageRunConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ImageRunConfig;
  rootfs: { type: string; diff_ids: string[] };
  history?: unknown[];
}

export interface LayerRecord {
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
}

/** What the store remembers about one image name. */
export interface ImageRecord {
  /** canonical reference: docker.io/library/busybox:latest, or repo@sha256:… when pulled by digest only */
  name: string;
  /** docker.io/library/busybox */
  repository: string;
  tag?: string;
  /** digest of the platform manifest */
  digest: string;
  /** digest of the index the manifest was selected from, when there was one */
  indexDigest?: string;
  manifestMediaType: string;
  platform: Platform;
  config: Descriptor;
  layers: LayerRecord[];
  /** manifest + config + layer blobs, compressed, in bytes */
  size: number;
  /** creation time from the image config */
  created?: string;
  /** when this record was written */
  storedAt: string;
}
