import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageRecord, ImageStore, LayerRecord } from '@berth/image';
import { ImageRootfsError, isErrno } from './errors.js';
import { type UnpackLimits, unpackLayer } from './unpack.js';

export function layersRoot(store: ImageStore): string {
  return join(store.root, 'layers', 'sha256');
}

/** Unpacked layers are keyed by DiffID: two images with the same layer content share one directory. */
export function layerDir(store: ImageStore, diffId: string): string {
  // the name of a directory in the store: a digest and nothing else (an image's record could say otherwise)
  if (!/^sha256:[a-f0-9]{64}$/.test(diffId))
    throw new ImageRootfsError('EBUNDLE', `layer diff_id ${JSON.stringify(diffId)} is not a sha256 digest`, {
      op: 'layer',
      path: diffId,
    });
  return join(layersRoot(store), diffId.slice('sha256:'.length));
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

const inflight = new Map<string, Promise<string>>();

/**
 * Unpacks one layer if it is not unpacked yet. The work happens in a temporary directory renamed into place,
 * so a crash never leaves a half layer under its final name, and concurrent callers share one unpack.
 */
export interface EnsureLayerOptions {
  /** bounds on what one layer may unpack to (default DEFAULT_UNPACK_LIMITS) */
  limits?: UnpackLimits;
}

export function ensureLayer(
  store: ImageStore,
  layer: LayerRecord,
  options: EnsureLayerOptions = {},
): Promise<string> {
  const dir = layerDir(store, layer.diffId);
  const running = inflight.get(dir);
  if (running !== undefined) return running;
  const work = (async () => {
    if (await exists(dir)) return dir;
    const tmpRoot = join(store.root, 'layers', 'tmp');
    await mkdir(tmpRoot, { recursive: true, mode: 0o700 });
    const tmp = join(tmpRoot, `${layer.diffId.slice(7, 19)}-${randomBytes(4).toString('hex')}`);
    try {
      await unpackLayer(store.blobPath(layer.digest), tmp, {
        diffId: layer.diffId,
        ...(options.limits !== undefined ? { limits: options.limits } : {}),
      });
      await rename(tmp, dir).catch(async (err: unknown) => {
        // another process finished the same layer first: theirs is as good as ours
        if (!isErrno(err, 'ENOTEMPTY') && !isErrno(err, 'EEXIST')) throw err;
      });
      return dir;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  })();
  inflight.set(dir, work);
  work.then(
    () => inflight.delete(dir),
    () => inflight.delete(dir),
  );
  return work;
}

/** All layer directories of an image, bottom first, unpacking what is missing (up to two at a time). */
export async function ensureLayers(
  store: ImageStore,
  image: ImageRecord,
  options: EnsureLayerOptions = {},
): Promise<string[]> {
  await mkdir(layersRoot(store), { recursive: true, mode: 0o700 });
  const out: string[] = new Array(image.layers.length);
  let next = 0;
  const worker = async () => {
    while (next < image.layers.length) {
      const i = next++;
      out[i] = await ensureLayer(store, image.layers[i]!, options);
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

/**
 * Removes unpacked layers that no image in the store and no snapshot uses. Runs after `ImageStore.prune` or
 * `remove`, which only know about blobs.
 */
export async function pruneLayers(store: ImageStore): Promise<{ removed: string[] }> {
  const keep = new Set<string>();
  for (const r of await store.list()) for (const l of r.layers) keep.add(l.diffId.replace(/^sha256:/, ''));
  // snapshots and `berth run` containers record the layers they stand on; a running container keeps them
  // even after its image record is gone (a tag moved to a new digest)
  for (const [sub, file] of [
    ['snapshots', 'snapshot.json'],
    ['containers', 'image.json'],
  ] as const) {
    const parent = join(store.root, sub);
    for (const id of await readdir(parent).catch(() => [] as string[])) {
      try {
        const meta = JSON.parse(await readFile(join(parent, id, file), 'utf8')) as { diffIds?: string[] };
        for (const d of meta.diffIds ?? []) keep.add(d.replace(/^sha256:/, ''));
      } catch (err) {
        if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) {
          throw new ImageRootfsError('ESNAPSHOT', `${sub}/${id}/${file} is unreadable`, {
            op: 'prune layers',
            path: join(parent, id),
            cause: err,
          });
        }
      }
    }
  }
  const removed: string[] = [];
  for (const hex of await readdir(layersRoot(store)).catch(() => [] as string[])) {
    if (keep.has(hex)) continue;
    await rm(join(layersRoot(store), hex), { recursive: true, force: true });
    removed.push(`sha256:${hex}`);
  }
  return { removed };
}
