import { open, readFile } from 'node:fs/promises';
import { type ArchiveSource, openArchive } from './archive-source.js';
import { assertDigest, digestHex, hashFile } from './digest.js';
import { ImageError } from './errors.js';
import {
  ANNOTATION_IMAGE_NAME,
  type ImportOptions,
  importBlob,
  importFromSource,
  layoutEntries,
  planExport,
  recordImage,
  writeArchive,
} from './layout.js';
import { MediaType } from './media-types.js';
import { familiarName, formatReference, parseReference } from './reference.js';
import type { ImageStore } from './store.js';
import type { ImageConfig, ImageManifest, ImageRecord } from './types.js';

/** One entry of a `docker save` manifest.json. */
interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function archiveError(origin: string, why: string): ImageError {
  return new ImageError('EARCHIVE', `${origin}: ${why}`, { op: 'load docker archive', path: origin });
}

async function sniffLayer(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    if (head[0] === 0x1f && head[1] === 0x8b) return MediaType.ociLayerGzip;
    if (head.readUInt32LE(0) === 0xfd2fb528) return MediaType.ociLayerZstd;
    return MediaType.ociLayer;
  } finally {
    await fh.close();
  }
}

/** Images of a pre-25 docker archive: config and layer files named by path, manifest made here. */
async function loadLegacy(
  store: ImageStore,
  src: ArchiveSource,
  entries: DockerManifestEntry[],
  repository: string,
): Promise<ImageRecord[]> {
  const out: ImageRecord[] = [];
  for (const [i, e] of entries.entries()) {
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers)) {
      throw archiveError(src.origin, `manifest.json[${i}] needs Config and Layers`);
    }
    const configFile = await src.file(e.Config);
    if (configFile === undefined) throw archiveError(src.origin, `config ${e.Config} is missing`);
    const configBody = await readFile(configFile.path);
    const config = JSON.parse(configBody.toString('utf8')) as ImageConfig;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== e.Layers.length) {
      throw archiveError(
        src.origin,
        `${e.Config} lists ${diffIds.length} diff_ids for ${e.Layers.length} layers`,
      );
    }
    const configDigest = await store.writeBlob(configBody);
    const layers = [];
    for (const path of e.Layers) {
      const f = await src.file(path);
      if (f === undefined) throw archiveError(src.origin, `layer ${path} is missing`);
      const digest = f.digest ?? (await hashFile(f.path));
      assertDigest(digest);
      const mediaType = await sniffLayer(f.path);
      await importBlob(store, src, path, { mediaType, digest, size: f.size });
      layers.push({ mediaType, digest, size: f.size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBody.length },
      layers,
    };
    const manifestDigest = await store.writeBlob(Buffer.from(JSON.stringify(manifest)));
    const names = (e.RepoTags ?? []).map((t) => formatReference(parseReference(t)));
    if (names.length === 0) names.push(`${repository}@${manifestDigest}`);
    for (const name of names) out.push(await recordImage(store, name, manifestDigest));
  }
  return out;
}

/**
 * Loads a `docker save` archive (plain, gzip or zstd compressed). Docker 25 and later write an OCI layout
 * next to manifest.json: then the original manifests are kept byte for byte and their digests survive;
 * older archives get an OCI manifest made from their config and layer files.
 */
export async function loadDockerArchive(
  store: ImageStore,
  file: string,
  options: ImportOptions = {},
): Promise<ImageRecord[]> {
  const src = await openArchive(store, file);
  try {
    if ((await src.file('manifest.json')) === undefined) {
      throw archiveError(file, 'is not a docker archive: manifest.json is missing');
    }
    return await loadFromSource(store, src, options);
  } finally {
    await src.close();
  }
}

/** Loads whatever `src` holds: a docker archive (manifest.json, with or without a layout) or an OCI layout. */
export async function loadFromSource(
  store: ImageStore,
  src: ArchiveSource,
  options: ImportOptions = {},
): Promise<ImageRecord[]> {
  const entries = await src.readJson<DockerManifestEntry[]>('manifest.json');
  const hasLayout = (await src.file('index.json')) !== undefined;
  if (entries === undefined) return importFromSource(store, src, options);
  if (!Array.isArray(entries)) throw archiveError(src.origin, 'manifest.json is not a list');
  if (!hasLayout) return loadLegacy(store, src, entries, options.repository ?? 'localhost/import');
  // manifest.json's RepoTags name the layout's manifests too, by the config they share
  const names = new Map<string, string[]>();
  const index = await src.readJson<{
    manifests?: { digest: string; annotations?: Record<string, string> }[];
  }>('index.json');
  for (const m of index?.manifests ?? []) {
    const mf = await src.readJson<ImageManifest>(`blobs/sha256/${digestHex(m.digest)}`);
    const config = mf?.config?.digest;
    const entry =
      config === undefined ? undefined : entries.find((e) => e.Config.includes(digestHex(config)));
    const tags = (entry?.RepoTags ?? []).map((t) => formatReference(parseReference(t)));
    if (tags.length > 0 && m.annotations?.[ANNOTATION_IMAGE_NAME] === undefined) names.set(m.digest, tags);
  }
  return importFromSource(store, src, { ...options, names });
}

/**
 * Writes images as a `docker save` archive that `docker load` (any version) reads: manifest.json naming
 * config and layer files, plus the OCI layout docker 25 writes alongside, so berth and docker keep digests.
 */
export async function saveDockerArchive(
  store: ImageStore,
  refs: string[],
  file: string,
): Promise<ImageRecord[]> {
  const plan = await planExport(store, refs);
  const manifest: DockerManifestEntry[] = plan.records.map((r) => ({
    Config: `blobs/sha256/${digestHex(r.config.digest)}`,
    RepoTags: r.tag !== undefined ? [`${familiarName(parseReference(r.name))}:${r.tag}`] : [],
    Layers: r.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
  }));
  await writeArchive(file, [
    ...layoutEntries(store, plan),
    { name: 'manifest.json', type: 'file', mode: 0o644, body: Buffer.from(JSON.stringify(manifest)) },
  ]);
  return plan.records;
}
