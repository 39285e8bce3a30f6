import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageRecord, ImageStore } from '@berth/image';
import { removeTree } from '@berth/sys';
import { ensureLayers } from '../layers/cache.js';
import { ImageRootfsError, isErrno } from '../layers/errors.js';
import type { UnpackLimits } from '../layers/unpack.js';
import { mergeLayers } from './copy.js';
import { isMounted, mountOverlay, mountPoints, unmount } from './mount.js';

export type SnapshotMode = 'overlay' | 'copy';

export interface SnapshotInfo {
  id: string;
  /** the container's root filesystem: the overlay mount point, or the merged copy */
  rootfs: string;
  mode: SnapshotMode;
  image: string;
  imageDigest: string;
  diffIds: string[];
  /** why overlay was not used, when the copy fallback was taken */
  fallbackReason?: string;
}

export interface Snapshot extends SnapshotInfo {
  /** unmounts and removes the snapshot (same as deleteSnapshot) */
  cleanup(): Promise<void>;
}

export interface PrepareSnapshotOptions {
  /** `auto` (default): overlay, and the copy fallback when the overlay mount fails */
  mode?: 'auto' | SnapshotMode;
  /** bounds on what each layer may unpack to (default DEFAULT_UNPACK_LIMITS) */
  limits?: UnpackLimits;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function snapshotsRoot(store: ImageStore): string {
  return join(store.root, 'snapshots');
}

export function snapshotDir(store: ImageStore, id: string): string {
  if (!ID_RE.test(id)) {
    throw new ImageRootfsError(
      'ESNAPSHOT',
      `snapshot id ${JSON.stringify(id)} must be letters, digits, '_', '.', '-'`,
      {
        op: 'snapshot',
        path: id,
      },
    );
  }
  return join(snapshotsRoot(store), id);
}

/**
 * A writable root filesystem for one container: the image's layers as overlay lowerdirs with a per-container
 * upper and work dir, or a merged copy where overlay cannot be mounted.
 */
export async function prepareSnapshot(
  store: ImageStore,
  image: ImageRecord | string,
  containerId: string,
  options: PrepareSnapshotOptions = {},
): Promise<Snapshot> {
  const dir = snapshotDir(store, containerId);
  const record = typeof image === 'string' ? await store.require(image) : image;
  await mkdir(snapshotsRoot(store), { recursive: true, mode: 0o700 });
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if (isErrno(err, 'EEXIST')) {
      throw new ImageRootfsError('ESNAPSHOT', `snapshot ${containerId} already exists at ${dir}`, {
        op: 'prepare snapshot',
        path: dir,
        cause: err,
      });
    }
    throw err;
  }
  try {
    const info: SnapshotInfo = {
      id: containerId,
      rootfs: join(dir, 'rootfs'),
      mode: 'overlay',
      image: record.name,
      imageDigest: record.digest,
      diffIds: record.layers.map((l) => l.diffId),
    };
    // written first, so pruneLayers keeps these layers even while they are being unpacked
    await writeMeta(dir, info);
    const layers = await ensureLayers(
      store,
      record,
      options.limits !== undefined ? { limits: options.limits } : {},
    );
    await mkdir(info.rootfs, { mode: 0o755 });
    const mode = options.mode ?? 'auto';
    if (mode !== 'copy') {
      const upper = join(dir, 'upper');
      const work = join(dir, 'work');
      await mkdir(upper, { mode: 0o755 });
      await mkdir(work, { mode: 0o700 });
      try {
        await mountOverlay(info.rootfs, { lower: layers, upper, work });
      } catch (err) {
        if (mode === 'overlay') throw err;
        info.fallbackReason = (err as Error).message;
        await rm(upper, { recursive: true, force: true });
        await rm(work, { recursive: true, force: true });
      }
    }
    if (mode === 'copy' || info.fallbackReason !== undefined) {
      info.mode = 'copy';
      await mergeLayers(layers, info.rootfs);
    }
    await writeMeta(dir, info);
    return { ...info, cleanup: () => deleteSnapshot(store, containerId) };
  } catch (err) {
    await deleteSnapshot(store, containerId).catch(() => {});
    throw err;
  }
}

async function writeMeta(dir: string, info: SnapshotInfo): Promise<void> {
  const tmp = join(dir, 'snapshot.json.tmp');
  await writeFile(tmp, JSON.stringify(info, null, 2));
  await rename(tmp, join(dir, 'snapshot.json'));
}

/**
 * Unmounts and removes a snapshot; deleting one that does not exist is not an error. Nothing is removed while
 * anything is still mounted below it: rm -rf through a live overlay would delete files of shared layers.
 */
export async function deleteSnapshot(store: ImageStore, containerId: string): Promise<void> {
  const dir = snapshotDir(store, containerId);
  const rootfs = join(dir, 'rootfs');
  if (await isMounted(rootfs)) await unmount(rootfs);
  const below = (await mountPoints()).filter((m) => m === dir || m.startsWith(`${dir}/`));
  if (below.length > 0) {
    throw new ImageRootfsError('ESNAPSHOT', `snapshot ${containerId} still has mounts: ${below.join(', ')}`, {
      op: 'delete snapshot',
      path: dir,
    });
  }
  // its upper directory is what the container wrote: removed by fd, never following what it planted
  removeTree(dir);
}

export async function listSnapshots(store: ImageStore): Promise<SnapshotInfo[]> {
  const out: SnapshotInfo[] = [];
  for (const id of await readdir(snapshotsRoot(store)).catch(() => [] as string[])) {
    try {
      out.push(
        JSON.parse(await readFile(join(snapshotsRoot(store), id, 'snapshot.json'), 'utf8')) as SnapshotInfo,
      );
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }
  return out;
}
