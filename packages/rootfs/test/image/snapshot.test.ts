import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ImageRecord, ImageStore, RegistryClient } from '@berth/image';
import { hasErrno, libc, lsetxattr } from '@berth/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestLayers, pushTestImage, randomName } from '../../../image/test/helpers/image.js';
import { type StartedRegistry, startRegistry } from '../../../image/test/helpers/registry.js';
import {
  ensureLayers,
  ImageRootfsError,
  layerDir,
  listSnapshots,
  mergeLayers,
  mountOverlay,
  prepareSnapshot,
  pruneLayers,
} from '../../src/image.js';
import { describeTree } from './helpers.js';

let registry: StartedRegistry;
let store: ImageStore;
let record: ImageRecord;
let root: string;

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir));
}

beforeAll(async () => {
  registry = await startRegistry();
  const pushed = await pushTestImage(
    new RegistryClient({ registry: registry.host }),
    randomName('berth/snap'),
    'v1',
    await buildTestLayers(),
  );
  root = mkdtempSync(join(tmpdir(), 'berth-snap-store-'));
  store = await ImageStore.open(root);
  record = await store.pull(pushed.ref);
});

afterAll(async () => {
  await registry.stop();
  expect(await mountsUnder(root)).toEqual([]);
  rmSync(root, { recursive: true, force: true });
});

function expectMergedTree(rootfs: string): void {
  expect(existsSync(join(rootfs, 'etc/removed-later'))).toBe(false);
  expect(readdirSync(join(rootfs, 'opt/data'))).toEqual(['c']);
  expect(readFileSync(join(rootfs, 'etc/hello'), 'utf8')).toBe('hello from layer 2\n');
  expect(readFileSync(join(rootfs, 'usr/share/zstd.txt'), 'utf8')).toBe('from a zstd layer\n');
  expect(execFileSync('chroot', [rootfs, '/bin/sh', '-c', 'echo hi; id -u bob'], { encoding: 'utf8' })).toBe(
    'hi\n1000\n',
  );
}

describe('snapshots', () => {
  it('mounts an overlay with a per-container upper dir and removes it on cleanup', async () => {
    const id = randomName('ctr');
    const snap = await prepareSnapshot(store, record, id, { mode: 'overlay' });
    expect(snap.mode).toBe('overlay');
    expect(await mountsUnder(root)).toEqual([snap.rootfs]);
    expectMergedTree(snap.rootfs);
    writeFileSync(join(snap.rootfs, 'etc/hello'), 'changed\n');
    // writes land in the container's upper dir, never in the shared layer
    expect(readFileSync(join(layerDir(store, record.layers[1]!.diffId), 'etc/hello'), 'utf8')).toBe(
      'hello from layer 2\n',
    );
    expect(readFileSync(join(root, 'snapshots', id, 'upper/etc/hello'), 'utf8')).toBe('changed\n');
    expect((await listSnapshots(store)).map((s) => s.id)).toContain(id);
    await snap.cleanup();
    expect(await mountsUnder(root)).toEqual([]);
    expect(existsSync(join(root, 'snapshots', id))).toBe(false);
    await snap.cleanup();
  });

  it('builds the same tree with the copy fallback', async () => {
    const a = await prepareSnapshot(store, record, randomName('ovl'), { mode: 'overlay' });
    const b = await prepareSnapshot(store, record.name, randomName('cpy'), { mode: 'copy' });
    try {
      expect(b.mode).toBe('copy');
      expectMergedTree(b.rootfs);
      expect(describeTree(b.rootfs)).toEqual(describeTree(a.rootfs));
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
    expect(await mountsUnder(root)).toEqual([]);
  });

  it('refuses a second snapshot with the same id and an id with path tricks', async () => {
    const id = randomName('dup');
    const snap = await prepareSnapshot(store, record, id);
    try {
      await expect(prepareSnapshot(store, record, id)).rejects.toMatchObject({ code: 'ESNAPSHOT' });
      await expect(prepareSnapshot(store, record, '../escape')).rejects.toThrow(
        /snapshot id "\.\.\/escape" must be/,
      );
    } finally {
      await snap.cleanup();
    }
  });

  it('copies onto a file system without xattrs (ramfs): ENOTSUP is EOPNOTSUPP', async () => {
    const layers = await ensureLayers(store, record);
    const mnt = mkdtempSync(join(tmpdir(), 'berth-ramfs-'));
    const sys = await libc();
    sys.mount('ramfs', mnt, 'ramfs', 0, 'mode=0755');
    try {
      writeFileSync(join(mnt, 'probe'), '');
      // the premise: this file system refuses every xattr, with errno 95
      let refused: unknown;
      try {
        lsetxattr(join(mnt, 'probe'), 'user.berth', Buffer.from('x'));
      } catch (err) {
        refused = err;
      }
      expect(hasErrno(refused, 'ENOTSUP') && hasErrno(refused, 'EOPNOTSUPP')).toBe(true);
      await mergeLayers(layers, join(mnt, 'rootfs'));
      expectMergedTree(join(mnt, 'rootfs'));
      // the layers carry user.berth on home/bob/notes: it is the only thing the copy could not keep
      const ref = await prepareSnapshot(store, record, randomName('ref'), { mode: 'copy' });
      try {
        expect(describeTree(join(mnt, 'rootfs'))).toEqual(describeTree(ref.rootfs));
      } finally {
        await ref.cleanup();
      }
    } finally {
      sys.umount(mnt, 0);
      rmSync(mnt, { recursive: true, force: true });
    }
    expect(await mountsUnder(mnt)).toEqual([]);
  });

  it('names the errno when overlay cannot be mounted, without mount(8)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-ovl-bad-'));
    try {
      const err = await mountOverlay(join(dir, 'missing-target'), {
        lower: [join(dir, 'no-such-lower')],
        upper: join(dir, 'upper'),
        work: join(dir, 'work'),
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageRootfsError);
      expect(err).toMatchObject({ code: 'EMOUNT', errno: 'ENOENT', op: 'mount overlay' });
      expect((err as Error).message).toBe(
        `mount overlay ${join(dir, 'missing-target')}: ENOENT (no such file or directory)`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prunes unpacked layers only when no image and no snapshot uses them', async () => {
    const snap = await prepareSnapshot(store, record, randomName('keep'));
    await store.remove(record.name);
    expect((await pruneLayers(store)).removed).toEqual([]);
    await snap.cleanup();
    const { removed } = await pruneLayers(store);
    expect(removed.sort()).toEqual(record.layers.map((l) => l.diffId).sort());
    expect(readdirSync(join(root, 'layers', 'sha256'))).toEqual([]);
    expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
  });
});
