import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageStore, importLayout, loadImages, MediaType, recordImage, saveImages } from '../src/index.js';
import { tarBuffer } from './helpers/image.js';

const dirs: string[] = [];
async function temp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const d of dirs) expect(existsSync(d)).toBe(false);
});

/** A one-layer image written straight into a store (no registry needed for layout tests). */
async function storeWithImage(name: string) {
  const store = await ImageStore.open(await temp('berth-layout-store-'));
  const layer = await tarBuffer([{ name: 'hello', type: 'file', body: Buffer.from('hi\n') }]);
  const layerDigest = await store.writeBlob(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
    }),
  );
  const configDigest = await store.writeBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MediaType.ociLayer, digest: layerDigest, size: layer.length }],
    }),
  );
  const record = await recordImage(store, name, await store.writeBlob(manifest));
  return { store, record, layerDigest };
}

describe('OCI layout and docker archives', () => {
  it('keeps digests through every format and leaves no scratch files', async () => {
    const { store, record } = await storeWithImage('example.com/app:1');
    for (const format of ['oci-archive', 'oci-dir', 'docker-archive'] as const) {
      const out = join(await temp('berth-layout-out-'), 'img');
      await saveImages(store, [record.name], out, format);
      const other = await ImageStore.open(await temp('berth-layout-store2-'));
      const loaded = await loadImages(other, out);
      expect(loaded.map((r) => [r.name, r.digest, r.config.digest])).toEqual([
        [record.name, record.digest, record.config.digest],
      ]);
      expect(readdirSync(join(other.root, 'ingest'))).toEqual([]);
    }
  });

  it('refuses a diff_id that is not a digest (it names a directory of the store): `sha256:../../etc`', async () => {
    const store = await ImageStore.open(await temp('berth-layout-store-'));
    const layer = await tarBuffer([{ name: 'hello', type: 'file', body: Buffer.from('hi\n') }]);
    const layerDigest = await store.writeBlob(layer);
    const traversal = 'sha256:../../../../../../../../etc';
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [layerDigest, traversal] },
      }),
    );
    const configDigest = await store.writeBlob(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
        layers: [
          { mediaType: MediaType.ociLayer, digest: layerDigest, size: layer.length },
          { mediaType: MediaType.ociLayer, digest: layerDigest, size: layer.length },
        ],
      }),
    );
    await expect(recordImage(store, 'example.com/evil:1', await store.writeBlob(manifest))).rejects.toThrow(
      /rootfs\.diff_ids\[1\] "sha256:\.\.\/.*": not a valid digest/,
    );
    // a docker save archive (the legacy layout: manifest.json, a config, layer tars) with such a diff_id
    const archive = join(await temp('berth-layout-evil-'), 'evil.tar');
    writeFileSync(
      archive,
      await tarBuffer([
        {
          name: 'manifest.json',
          type: 'file',
          body: Buffer.from(
            JSON.stringify([
              { Config: 'c.json', RepoTags: ['evil:1'], Layers: ['a/layer.tar', 'b/layer.tar'] },
            ]),
          ),
        },
        { name: 'c.json', type: 'file', body: config },
        { name: 'a', type: 'dir' },
        { name: 'a/layer.tar', type: 'file', body: layer },
        { name: 'b', type: 'dir' },
        { name: 'b/layer.tar', type: 'file', body: layer },
      ]),
    );
    const other = await ImageStore.open(await temp('berth-layout-store2-'));
    await expect(loadImages(other, archive)).rejects.toThrow(/not a valid digest/);
    expect(await other.list()).toEqual([]);
  });

  it('rejects a blob whose content does not match its digest, storing nothing', async () => {
    const { store, record, layerDigest } = await storeWithImage('example.com/app:2');
    const dir = join(await temp('berth-layout-bad-'), 'layout');
    await saveImages(store, [record.name], dir, 'oci-dir');
    writeFileSync(join(dir, 'blobs/sha256', layerDigest.slice(7)), 'tampered content, same name');
    const other = await ImageStore.open(await temp('berth-layout-store3-'));
    await expect(importLayout(other, dir)).rejects.toMatchObject({
      code: expect.stringMatching(/ESIZE|EDIGEST/),
    });
    expect(await other.list()).toEqual([]);
    expect(existsSync(other.blobPath(layerDigest))).toBe(false);
  });

  it('saves a layout only into a directory of its own, and never writes through a link left in it', async () => {
    const { store, record, layerDigest } = await storeWithImage('example.com/app:3');
    const base = await temp('berth-layout-save-');
    const victim = join(base, 'victim');
    writeFileSync(victim, 'precious', { mode: 0o600 });
    const plant = (dir: string) => {
      for (const n of ['index.json', 'index.json.tmp', 'oci-layout']) symlinkSync(victim, join(dir, n));
    };
    // a directory another user made first (in /tmp, say), with links to a file of root's
    const theirs = join(base, 'theirs');
    mkdirSync(theirs);
    plant(theirs);
    chownSync(theirs, 65534, 65534);
    await expect(saveImages(store, [record.name], theirs, 'oci-dir')).rejects.toThrow(
      `${theirs}: owned by uid 65534, not by this user: save a layout into a new directory, or one of your own`,
    );
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await expect(saveImages(store, [record.name], open, 'oci-dir')).rejects.toThrow(
      `${open}: others may write to it`,
    );
    symlinkSync(base, join(base, 'link'));
    await expect(saveImages(store, [record.name], join(base, 'link'), 'oci-dir')).rejects.toThrow(
      'not a directory',
    );
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(readdirSync(open)).toEqual([]);
    // its own directory, with links in it (from whatever was there before): replaced, not followed
    const own = join(base, 'own');
    mkdirSync(join(own, 'blobs', 'sha256'), { recursive: true });
    plant(own);
    symlinkSync(victim, join(own, 'blobs', 'sha256', layerDigest.slice(7)));
    await saveImages(store, [record.name], own, 'oci-dir');
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    for (const f of ['index.json', 'oci-layout', `blobs/sha256/${layerDigest.slice(7)}`])
      expect(lstatSync(join(own, f)).isFile()).toBe(true);
    expect(readdirSync(own).sort()).toEqual(['blobs', 'index.json', 'index.json.tmp', 'oci-layout']);
    const other = await ImageStore.open(await temp('berth-layout-store5-'));
    expect((await loadImages(other, own)).map((r) => r.digest)).toEqual([record.digest]);
  });

  it("a layout directory's links stay inside it, in every component of a path (x/secret with x -> /etc)", async () => {
    const base = await temp('berth-layout-links-');
    const outside = join(base, 'outside');
    mkdirSync(outside);
    const secret = Buffer.from('root-only secret\n');
    writeFileSync(join(outside, 'secret'), secret, { mode: 0o600 });
    writeFileSync(join(outside, 'config.json'), JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] } }));
    const legacy = (layout: string, config: string, layers: string[]) => {
      mkdirSync(layout);
      writeFileSync(
        join(layout, 'manifest.json'),
        JSON.stringify([{ Config: config, RepoTags: ['evil:1'], Layers: layers }]),
      );
    };
    // a docker-save directory (before Docker 25) names its config and layers by path
    const evil = join(base, 'evil');
    legacy(evil, 'x/config.json', []);
    symlinkSync(outside, join(evil, 'x'));
    const store = await ImageStore.open(await temp('berth-layout-store6-'));
    await expect(loadImages(store, evil)).rejects.toThrow('config x/config.json is missing');
    const evil2 = join(base, 'evil2');
    legacy(evil2, 'c.json', ['y/secret']);
    writeFileSync(
      join(evil2, 'c.json'),
      JSON.stringify({ rootfs: { type: 'layers', diff_ids: ['sha256:' + '0'.repeat(64)] } }),
    );
    symlinkSync('../outside', join(evil2, 'y'));
    await expect(loadImages(store, evil2)).rejects.toThrow('layer y/secret is missing');
    const digest = `sha256:${createHash('sha256').update(secret).digest('hex')}`;
    expect(existsSync(store.blobPath(digest))).toBe(false);
    // links that stay inside still work: a layer docker save wrote once and linked again
    const good = join(base, 'good');
    legacy(good, 'c.json', ['b/layer.tar']);
    const layer = await tarBuffer([{ name: 'hello', type: 'file', body: Buffer.from('hi\n') }]);
    const layerDigest = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
    writeFileSync(
      join(good, 'c.json'),
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [layerDigest] },
      }),
    );
    mkdirSync(join(good, 'a'));
    writeFileSync(join(good, 'a', 'layer.tar'), layer);
    mkdirSync(join(good, 'b'));
    symlinkSync('../a/layer.tar', join(good, 'b', 'layer.tar'));
    expect((await loadImages(store, good)).map((r) => r.name)).toEqual(['docker.io/library/evil:1']);
    expect(existsSync(store.blobPath(layerDigest))).toBe(true);
  });

  it('refuses an archive that decompresses to thousands of times its size (a zstd bomb), keeping nothing', async () => {
    const store = await ImageStore.open(await temp('berth-layout-store7-'));
    const dir = await temp('berth-layout-bomb-');
    const bomb = join(dir, 'bomb.tar.zst');
    // 384 MiB of zeros in a tar, some kilobytes once compressed
    const made = spawnSync('bash', [
      '-c',
      `cd ${dir} && truncate -s 384M zeros && tar -cf - zeros | zstd -q -3 -o ${bomb} && rm zeros`,
    ]);
    expect(made.status).toBe(0);
    expect(lstatSync(bomb).size).toBeLessThan(1 << 20);
    await expect(loadImages(store, bomb)).rejects.toThrow(
      /decompresses to more than 2000 times its size .*: refused as a decompression bomb/,
    );
    expect(readdirSync(join(store.root, 'ingest'))).toEqual([]);
  });

  it('refuses archive entries that climb out, and says what the input is not', async () => {
    const store = await ImageStore.open(await temp('berth-layout-store4-'));
    const dir = await temp('berth-layout-evil-');
    const evil = join(dir, 'evil.tar');
    writeFileSync(evil, await tarBuffer([{ name: '../escape', type: 'file', body: Buffer.from('x') }]));
    await expect(loadImages(store, evil)).rejects.toThrow(
      `${evil}: entry "../escape" climbs out of the archive`,
    );
    expect(existsSync(join(dir, '..', 'escape'))).toBe(false);
    mkdirSync(join(dir, 'empty'));
    await expect(loadImages(store, join(dir, 'empty'))).rejects.toThrow(
      'is not an OCI image layout: index.json with a manifests array is missing',
    );
    expect(readdirSync(join(store.root, 'ingest'))).toEqual([]);
  });
});
