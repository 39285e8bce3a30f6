import { createReadStream, createWriteStream, constants as fsConstants } from 'node:fs';
import { copyFile, lstat, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type ArchiveSource, openArchive } from './archive-source.js';
import { assertDigest, digestHex } from './digest.js';
import { ImageError } from './errors.js';
import { randomSuffix, writeFileAtomic } from './fsutil.js';
import { isIndexType, isManifestType, MediaType } from './media-types.js';
import { hostPlatform, selectPlatform } from './platform.js';
import { formatReference, parseReference, repositoryName } from './reference.js';
import type { ImageStore } from './store.js';
import { type TarInput, writeTar } from './tar/writer.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, ImageRecord, Platform } from './types.js';

/** The annotations that name an image in a layout: containerd's full name, and the spec's (often a tag). */
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

export type ArchiveFormat = 'oci-archive' | 'oci-dir' | 'docker-archive';

export interface ImportOptions {
  /** names for images the layout leaves unnamed or names only by tag (default localhost/<file name>) */
  repository?: string;
}

function layoutError(origin: string, why: string): ImageError {
  return new ImageError('EARCHIVE', `${origin}: ${why}`, { op: 'import image', path: origin });
}

/** Copies (or moves, for our own scratch files) one blob of a source into the store, verified. */
export async function importBlob(
  store: ImageStore,
  src: ArchiveSource,
  path: string,
  desc: Descriptor,
): Promise<void> {
  assertDigest(desc.digest, path);
  if (await store.hasBlob(desc.digest, desc.size)) return;
  const f = await src.file(path);
  if (f === undefined) throw layoutError(src.origin, `blob ${desc.digest} is missing (${path})`);
  if (f.size !== desc.size) {
    throw new ImageError(
      'ESIZE',
      `${src.origin}: blob ${desc.digest} has ${f.size} bytes, the descriptor says ${desc.size}`,
      {
        op: 'verify blob',
        path: f.path,
      },
    );
  }
  await store.importBlobFile(f.path, desc.digest, {
    move: src.owned,
    ...(f.digest !== undefined ? { hashed: f.digest } : {}),
  });
}

/**
 * Writes the record of an image whose manifest and config are in the store already; layers are checked
 * against the config's diff_ids count (their content is checked again when a layer is unpacked).
 */
export async function recordImage(
  store: ImageStore,
  name: string,
  manifestDigest: string,
  extra: { indexDigest?: string; platform?: Platform } = {},
): Promise<ImageRecord> {
  const manifestBody = await store.readBlob(manifestDigest);
  const manifest = JSON.parse(manifestBody.toString('utf8')) as ImageManifest;
  const config = await store.readJson<ImageConfig>(manifest.config.digest);
  const diffIds = config.rootfs?.diff_ids ?? [];
  // a diff_id names the layer's directory in the store: never a path (`sha256:../../etc`)
  if (!Array.isArray(diffIds))
    throw new ImageError('EMANIFEST', `image ${name}: rootfs.diff_ids is not an array`, {
      op: 'import image',
    });
  for (const [i, d] of diffIds.entries()) assertDigest(d, `image ${name}: rootfs.diff_ids[${i}]`);
  if (!Array.isArray(manifest.layers) || diffIds.length !== manifest.layers.length) {
    throw new ImageError(
      'EMANIFEST',
      `image ${name}: config lists ${diffIds.length} diff_ids for ${manifest.layers?.length ?? 0} layers`,
      { op: 'import image', path: manifest.config.digest },
    );
  }
  for (const l of manifest.layers) {
    if (!(await store.hasBlob(l.digest, l.size))) {
      throw new ImageError('ENOTFOUND', `image ${name}: layer ${l.digest} is not in the store`, {
        op: 'import image',
        path: l.digest,
      });
    }
  }
  const ref = parseReference(name);
  const platform: Platform = extra.platform ?? { os: config.os, architecture: config.architecture };
  if (extra.platform === undefined && config.variant !== undefined) platform.variant = config.variant;
  const record: ImageRecord = {
    name: formatReference(ref),
    repository: repositoryName(ref),
    digest: manifestDigest,
    manifestMediaType: manifest.mediaType ?? MediaType.ociManifest,
    platform,
    config: {
      mediaType: manifest.config.mediaType,
      digest: manifest.config.digest,
      size: manifest.config.size,
    },
    layers: manifest.layers.map((l, i) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
      diffId: diffIds[i]!,
    })),
    size: manifestBody.length + manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0),
    storedAt: new Date().toISOString(),
  };
  if (ref.tag !== undefined) record.tag = ref.tag;
  if (extra.indexDigest !== undefined) record.indexDigest = extra.indexDigest;
  if (config.created !== undefined) record.created = config.created;
  await store.putRecord(record);
  return record;
}

/** Imports one manifest (config and layers first, the manifest last) and returns its digest. */
async function importManifest(store: ImageStore, src: ArchiveSource, desc: Descriptor): Promise<void> {
  await importBlob(store, src, `blobs/sha256/${digestHex(desc.digest)}`, desc);
  const manifest = await store.readJson<ImageManifest>(desc.digest);
  if (manifest.config === undefined || !Array.isArray(manifest.layers)) {
    throw layoutError(src.origin, `manifest ${desc.digest} has no config or no layers`);
  }
  for (const d of [manifest.config, ...manifest.layers]) {
    await importBlob(store, src, `blobs/sha256/${digestHex(d.digest)}`, d);
  }
}

function nameFor(desc: Descriptor, fallbackRepo: string): string | undefined {
  const full = desc.annotations?.[ANNOTATION_IMAGE_NAME];
  if (full) return formatReference(parseReference(full));
  const ref = desc.annotations?.[ANNOTATION_REF_NAME];
  if (!ref) return undefined;
  // the image spec makes ref.name a tag ("v1"); podman and buildah put a whole reference there
  if (ref.includes('/') || ref.includes(':') || ref.includes('@'))
    return formatReference(parseReference(ref));
  return formatReference(parseReference(`${fallbackRepo}:${ref}`));
}

/** Reads the layout of `src` into the store; used by importLayout and by loadDockerArchive for docker 25+ archives. */
export async function importFromSource(
  store: ImageStore,
  src: ArchiveSource,
  options: ImportOptions & { names?: Map<string, string[]> } = {},
): Promise<ImageRecord[]> {
  const index = await src.readJson<ImageIndex>('index.json');
  if (index === undefined || !Array.isArray(index.manifests)) {
    throw layoutError(src.origin, 'is not an OCI image layout: index.json with a manifests array is missing');
  }
  const fallbackRepo = options.repository ?? `localhost/${defaultRepository(src.origin)}`;
  const release = await store.lease(index.manifests.map((m) => m.digest));
  const out: ImageRecord[] = [];
  try {
    for (const top of index.manifests) {
      assertDigest(top.digest, 'index.json manifests[].digest');
      let desc = top;
      let indexDigest: string | undefined;
      if (isIndexType(top.mediaType)) {
        // a nested index (multi-platform): the host's platform is the one a container here can run
        await importBlob(store, src, `blobs/sha256/${digestHex(top.digest)}`, top);
        const nested = await store.readJson<ImageIndex>(top.digest);
        desc = selectPlatform(
          nested.manifests.filter((m) => isManifestType(m.mediaType)),
          hostPlatform(),
        );
        indexDigest = top.digest;
      } else if (!isManifestType(top.mediaType)) {
        continue;
      }
      await importManifest(store, src, desc);
      const names = [
        ...(options.names?.get(desc.digest) ?? []),
        ...[nameFor(top, fallbackRepo)].filter((n): n is string => n !== undefined),
      ];
      if (names.length === 0) names.push(`${repositoryName(parseReference(fallbackRepo))}@${desc.digest}`);
      for (const name of new Set(names)) {
        out.push(
          await recordImage(store, name, desc.digest, {
            ...(indexDigest !== undefined ? { indexDigest } : {}),
            ...(desc.platform !== undefined ? { platform: desc.platform } : {}),
          }),
        );
      }
    }
  } finally {
    await release();
  }
  return out;
}

function defaultRepository(origin: string): string {
  const base = basename(origin)
    .replace(/\.(tar|tgz|tar\.gz|tar\.zst|oci)$/i, '')
    .toLowerCase();
  const clean = base.replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return clean || 'import';
}

/**
 * Imports every image of an OCI image layout, given as a directory or a tar archive (`oci-archive`), into the
 * store. Blobs are verified against their digests before they get their name.
 */
export async function importLayout(
  store: ImageStore,
  source: string,
  options: ImportOptions = {},
): Promise<ImageRecord[]> {
  const src = await openArchive(store, source);
  try {
    return await importFromSource(store, src, options);
  } finally {
    await src.close();
  }
}

export interface ExportOptions {
  /** `oci-dir` (default), `oci-archive` (a tar of the layout) */
  format?: 'oci-dir' | 'oci-archive';
}

/** One exported image: the index entry that names it and the blobs it needs. */
export interface ExportPlan {
  records: ImageRecord[];
  index: ImageIndex;
  /** every blob, manifest first per image, deduplicated */
  blobs: { digest: string; size: number }[];
}

export async function planExport(store: ImageStore, refs: string[]): Promise<ExportPlan> {
  const records: ImageRecord[] = [];
  for (const ref of refs) records.push(await store.require(ref));
  const blobs = new Map<string, number>();
  const manifests: Descriptor[] = [];
  for (const r of records) {
    const manifestSize = (await stat(store.blobPath(r.digest))).size;
    blobs.set(r.digest, manifestSize);
    blobs.set(r.config.digest, r.config.size);
    for (const l of r.layers) blobs.set(l.digest, l.size);
    const annotations: Record<string, string> = { [ANNOTATION_IMAGE_NAME]: r.name };
    if (r.tag !== undefined) annotations[ANNOTATION_REF_NAME] = r.tag;
    manifests.push({
      mediaType: r.manifestMediaType,
      digest: r.digest,
      size: manifestSize,
      platform: r.platform,
      annotations,
    });
  }
  return {
    records,
    index: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests },
    blobs: [...blobs].map(([digest, size]) => ({ digest, size })),
  };
}

export const OCI_LAYOUT = `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}`;

/** Tar entries of an OCI layout for `plan` (used for oci-archive and, with more entries, docker-archive). */
export function layoutEntries(store: ImageStore, plan: ExportPlan): TarInput[] {
  const entries: TarInput[] = [
    { name: 'blobs', type: 'dir', mode: 0o755 },
    { name: 'blobs/sha256', type: 'dir', mode: 0o755 },
  ];
  for (const b of plan.blobs) {
    entries.push({
      name: `blobs/sha256/${digestHex(b.digest)}`,
      type: 'file',
      mode: 0o644,
      size: b.size,
      body: createReadStream(store.blobPath(b.digest), { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>,
    });
  }
  entries.push(
    { name: 'oci-layout', type: 'file', mode: 0o644, body: Buffer.from(OCI_LAYOUT) },
    { name: 'index.json', type: 'file', mode: 0o644, body: Buffer.from(JSON.stringify(plan.index)) },
  );
  return entries;
}

/** Streams tar entries into `file` through a temp file, so a failed save never leaves half an archive. */
export async function writeArchive(file: string, entries: TarInput[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${randomSuffix()}.tmp`;
  try {
    await pipeline(writeTar(entries), createWriteStream(tmp, { mode: 0o644 }));
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof ImageError) throw err;
    throw new ImageError('ESTORE', `cannot write ${file}`, { op: 'save image', path: file, cause: err });
  }
}

/**
 * `dir`, made when missing, checked to be a directory (not a link to one) that belongs to this
 * user and that nobody else may write: what is in it is then this user's alone.
 */
async function ownDirectory(dir: string): Promise<void> {
  await mkdir(dir, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST')
      throw new ImageError('ESTORE', `cannot make ${dir}: ${err.message}`, {
        op: 'save image',
        path: dir,
        cause: err,
      });
  });
  const st = await lstat(dir);
  const me = process.geteuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== me || (st.mode & 0o022) !== 0)
    throw new ImageError(
      'ESTORE',
      `${dir}: ${!st.isDirectory() ? 'not a directory' : st.uid !== me ? `owned by uid ${st.uid}, not by this user` : 'others may write to it'}: save a layout into a new directory, or one of your own that only you can write`,
      { op: 'save image', path: dir },
    );
}

/**
 * Writes images of the store as an OCI image layout: a directory (`oci-dir`) or a tar of one (`oci-archive`).
 * Manifests are named by `io.containerd.image.name` (the full reference) and `org.opencontainers.image.ref.name`
 * (the tag), so both containerd-style and spec-style readers find them.
 */
export async function exportLayout(
  store: ImageStore,
  refs: string[],
  target: string,
  options: ExportOptions = {},
): Promise<ImageRecord[]> {
  const plan = await planExport(store, refs);
  if (options.format === 'oci-archive') {
    await writeArchive(target, layoutEntries(store, plan));
    return plan.records;
  }
  const blobs = join(target, 'blobs', 'sha256');
  // Into a directory of the caller's that nobody else can write, each file through a new name
  // then renamed over: a directory another user made first (/tmp/out) could hold links to any
  // file (index.json.tmp -> /etc/shadow), which root would have written through.
  await ownDirectory(target);
  try {
    await ownDirectory(join(target, 'blobs'));
    await ownDirectory(blobs);
    for (const b of plan.blobs) {
      const dst = join(blobs, digestHex(b.digest));
      const st = await lstat(dst).catch(() => undefined);
      if (st?.isFile() && st.size === b.size) continue;
      const tmp = `${dst}.${randomSuffix()}.tmp`;
      try {
        await copyFile(store.blobPath(b.digest), tmp, fsConstants.COPYFILE_EXCL);
        await rename(tmp, dst);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    }
    // an existing layout keeps its other images: merge by digest, ours win
    const indexPath = join(target, 'index.json');
    let existing: Descriptor[] = [];
    try {
      if ((await lstat(indexPath)).isFile())
        existing = (JSON.parse(await readFile(indexPath, 'utf8')) as ImageIndex).manifests ?? [];
    } catch {
      existing = [];
    }
    const ours = new Set(plan.index.manifests.map((m) => m.annotations?.[ANNOTATION_IMAGE_NAME]));
    const manifests = [
      ...existing.filter((m) => !ours.has(m.annotations?.[ANNOTATION_IMAGE_NAME])),
      ...plan.index.manifests,
    ];
    await writeFileAtomic(join(target, 'oci-layout'), OCI_LAYOUT);
    await writeFileAtomic(indexPath, JSON.stringify({ ...plan.index, manifests }));
  } catch (err) {
    throw new ImageError('ESTORE', `cannot write the image layout ${target}`, {
      op: 'save image',
      path: target,
      cause: err,
    });
  }
  return plan.records;
}
