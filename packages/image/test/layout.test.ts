import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
