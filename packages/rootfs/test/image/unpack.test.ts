import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ImageRecord, ImageStore, RegistryClient } from '@berth/image';
import { lgetxattr } from '@berth/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestLayers,
  MTIME,
  pushTestImage,
  randomName,
  tarBuffer,
} from '../../../image/test/helpers/image.js';
import { type StartedRegistry, startRegistry } from '../../../image/test/helpers/registry.js';
import { ensureLayers, ImageRootfsError, OVERLAY_OPAQUE_XATTR, unpackLayer } from '../../src/image.js';
import { describeTree } from './helpers.js';

const dirs: string[] = [];
function temp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

let registry: StartedRegistry;
let store: ImageStore;
let record: ImageRecord;
let layerDirs: string[];

beforeAll(async () => {
  registry = await startRegistry();
  const layers = await buildTestLayers();
  const pushed = await pushTestImage(
    new RegistryClient({ registry: registry.host }),
    randomName('berth/unpack'),
    'v1',
    layers,
    { index: true },
  );
  store = await ImageStore.open(temp('berth-rootfs-store-'));
  record = await store.pull(pushed.ref);
  layerDirs = await ensureLayers(store, record);
});

afterAll(async () => {
  await registry.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const d of dirs) expect(existsSync(d)).toBe(false);
});

describe('unpackLayer into per-layer directories', () => {
  it('keeps files, hard links, symlinks, fifos, devices, xattrs, owners, modes and mtimes', () => {
    const base = layerDirs[0]!;
    expect(readFileSync(join(base, 'bin/busybox')).equals(readFileSync('/bin/busybox'))).toBe(true);
    expect(lstatSync(join(base, 'bin/busybox-hard')).ino).toBe(lstatSync(join(base, 'bin/busybox')).ino);
    expect(lstatSync(join(base, 'bin/busybox')).nlink).toBe(2);
    expect(lstatSync(join(base, 'bin/sh')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(base, 'run/fifo')).isFIFO()).toBe(true);
    const dev = lstatSync(join(base, 'dev/null'));
    expect(dev.isCharacterDevice()).toBe(true);
    expect(dev.rdev).toBe((1 << 8) | 3);
    const notes = lstatSync(join(base, 'home/bob/notes'));
    expect([notes.uid, notes.gid, notes.mode & 0o7777, notes.mtimeMs / 1000]).toEqual([
      1000,
      1000,
      0o640,
      MTIME + 60,
    ]);
    expect(lgetxattr(join(base, 'home/bob/notes'), 'user.berth')?.toString()).toBe('test-value');
    expect(lstatSync(join(base, 'tmp')).mode & 0o7777).toBe(0o1777);
    // directory mtimes survive the files created inside them
    expect(lstatSync(join(base, 'etc')).mtimeMs / 1000).toBe(MTIME);
  });

  it('turns whiteouts and opaque markers into the overlay forms', () => {
    const second = layerDirs[1]!;
    const wh = lstatSync(join(second, 'etc/removed-later'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect(lgetxattr(join(second, 'opt/data'), OVERLAY_OPAQUE_XATTR)?.toString()).toBe('y');
    expect(readdirSync(join(second, 'opt/data'))).toEqual(['c']);
    expect(readFileSync(join(layerDirs[2]!, 'usr/share/zstd.txt'), 'utf8')).toBe('from a zstd layer\n');
  });

  it('flattens all layers in apply mode to what the layers mean', async () => {
    const flat = temp('berth-flat-');
    for (const l of record.layers)
      await unpackLayer(store.blobPath(l.digest), flat, { whiteouts: 'apply', diffId: l.diffId });
    expect(existsSync(join(flat, 'etc/removed-later'))).toBe(false);
    expect(readdirSync(join(flat, 'opt/data'))).toEqual(['c']);
    expect(readFileSync(join(flat, 'etc/hello'), 'utf8')).toBe('hello from layer 2\n');
    expect(execFileSync('chroot', [flat, '/bin/echo', 'hi'], { encoding: 'utf8' })).toBe('hi\n');
    const tree = describeTree(flat);
    expect(tree).toContain('bin/sh symlink 777 0:0 -> busybox');
    expect(tree).toContain('home/bob/notes file 640 1000:1000 4');
    expect(tree.some((l) => l.includes('.wh.'))).toBe(false);
  });

  it('rejects a layer whose diff id does not match the config', async () => {
    const l = record.layers[1]!;
    const err = await unpackLayer(store.blobPath(l.digest), temp('berth-diff-'), {
      diffId: record.layers[0]!.diffId,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageRootfsError);
    expect((err as Error).message).toMatch(/has diff id sha256:[0-9a-f]{64}, expected sha256:/);
  });
});

describe('hostile layers', () => {
  async function attempt(entries: Parameters<typeof tarBuffer>[0]) {
    const root = temp('berth-evil-');
    const target = join(root, 'layer');
    const outside = join(root, 'outside');
    execFileSync('mkdir', ['-p', outside]);
    const tar = await tarBuffer(
      entries.map((e) => ({ ...e, linkname: e.linkname?.replace('OUTSIDE', outside) })),
    );
    const err = await unpackLayer(tar, target).catch((e: unknown) => e);
    return { err, outside, root };
  }

  it('rejects path traversal with ..', async () => {
    const { err, root } = await attempt([{ name: 'a/../../escaped', type: 'file', body: Buffer.from('x') }]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
    expect((err as Error).message).toBe('layer entry "a/../../escaped": climbs out of the layer with ..');
    expect(existsSync(join(root, 'escaped'))).toBe(false);
  });

  it('rejects absolute paths', async () => {
    const { err } = await attempt([{ name: '/etc/berth-evil', type: 'file', body: Buffer.from('x') }]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
    expect((err as Error).message).toBe('layer entry "/etc/berth-evil": is an absolute path');
    expect(existsSync('/etc/berth-evil')).toBe(false);
  });

  it('rejects writing through a symlink parent and writes nothing outside', async () => {
    const { err, outside } = await attempt([
      { name: 'link', type: 'symlink', linkname: 'OUTSIDE' },
      { name: 'link/pwned', type: 'file', body: Buffer.from('x') },
    ]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
    expect((err as Error).message).toBe(
      'layer entry "link/pwned": parent link is a symlink: the entry would be written outside its directory',
    );
    expect(readdirSync(outside)).toEqual([]);
  });

  it('rejects a directory replaced by a symlink before a write below it', async () => {
    const { err, outside } = await attempt([
      { name: 'd', type: 'dir' },
      { name: 'd/sub', type: 'dir' },
      { name: 'd', type: 'symlink', linkname: 'OUTSIDE' },
      { name: 'd/sub/pwned', type: 'file', body: Buffer.from('x') },
    ]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
    expect(readdirSync(outside)).toEqual([]);
  });

  it('rejects hard links that leave the layer', async () => {
    const { err } = await attempt([{ name: 'shadow', type: 'link', linkname: '../../etc/shadow' }]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
    expect((err as Error).message).toBe(
      'layer entry "shadow": hard link target "../../etc/shadow" climbs out of the layer',
    );
  });
});
