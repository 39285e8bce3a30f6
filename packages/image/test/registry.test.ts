import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageError, ImageStore, type PullEvent, RegistryClient, sha256 } from '../src/index.js';
import {
  buildTestLayers,
  type PushedImage,
  pushTestImage,
  randomName,
  type TestLayer,
} from './helpers/image.js';
import { type StartedRegistry, startRegistry } from './helpers/registry.js';

const tempDirs: string[] = [];
async function tempStore(): Promise<ImageStore> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-store-'));
  tempDirs.push(dir);
  return ImageStore.open(dir);
}

function blobFiles(store: ImageStore): string[] {
  return readdirSync(join(store.root, 'blobs', 'sha256')).sort();
}

function ingestFiles(store: ImageStore): string[] {
  return readdirSync(join(store.root, 'ingest'));
}

let layers: TestLayer[];
beforeAll(async () => {
  layers = await buildTestLayers();
});
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

describe('anonymous registry', () => {
  let registry: StartedRegistry;
  let pushed: PushedImage;
  beforeAll(async () => {
    registry = await startRegistry();
    const client = new RegistryClient({ registry: registry.host });
    pushed = await pushTestImage(client, randomName('berth/multi'), 'v1', layers, { index: true });
  });
  afterAll(async () => {
    await registry.stop();
    expect(existsSync(registry.dir)).toBe(false);
  });

  it('pulls a multi-platform index by tag, picking the host platform, and verifies every blob', async () => {
    const store = await tempStore();
    const events: PullEvent[] = [];
    const record = await store.pull(pushed.ref, { onProgress: (e) => events.push(e) });
    expect(record.name).toBe(pushed.ref);
    expect(record.digest).toBe(pushed.manifestDigest);
    expect(record.indexDigest).toBe(pushed.indexDigest);
    expect(record.platform).toMatchObject({ os: 'linux', architecture: 'amd64' });
    expect(record.layers.map((l) => l.diffId)).toEqual(layers.map((l) => l.diffId));
    expect(record.created).toBe('2024-01-02T03:04:05Z');
    for (const l of record.layers) expect(sha256(readFileSync(store.blobPath(l.digest)))).toBe(l.digest);
    expect(events.filter((e) => e.type === 'layer-done').length).toBe(layers.length);
    expect(events.at(-1)).toMatchObject({ type: 'done', digest: pushed.manifestDigest });
    expect(ingestFiles(store)).toEqual([]);
    expect(await store.get(pushed.ref)).toEqual(record);
    expect(await store.get(pushed.manifestDigest.slice(7, 19))).toEqual(record);

    const again: PullEvent[] = [];
    await store.pull(pushed.ref, { onProgress: (e) => again.push(e) });
    expect(again.filter((e) => e.type === 'layer-exists').length).toBe(layers.length);
  });

  it('selects another platform with --platform and pulls by digest', async () => {
    const store = await tempStore();
    const arm = await store.pull(pushed.ref, { platform: 'linux/arm64' });
    expect(arm.platform).toMatchObject({ architecture: 'arm64', variant: 'v8' });
    expect(arm.digest).not.toBe(pushed.manifestDigest);
    expect(arm.layers).toHaveLength(1);

    const byDigest = `${registry.host}/${pushed.repository}@${pushed.manifestDigest}`;
    const record = await store.pull(byDigest);
    expect(record.digest).toBe(pushed.manifestDigest);
    expect(record.tag).toBeUndefined();
    expect(await store.get(byDigest)).toMatchObject({ digest: pushed.manifestDigest });
  });

  it('names the platforms an index offers when none matches', async () => {
    const store = await tempStore();
    const err = await store.pull(pushed.ref, { platform: 'linux/s390x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect(err).toMatchObject({ code: 'EPLATFORM' });
    expect((err as Error).message).toBe(
      'no manifest for platform linux/s390x: the image offers linux/arm64/v8, linux/amd64',
    );
  });

  it('reports a missing tag as not found', async () => {
    const store = await tempStore();
    const err = await store.pull(`${registry.host}/${pushed.repository}:nope`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENOTFOUND', status: 404 });
    expect((err as Error).message).toContain('manifest unknown');
    expect(await store.list()).toEqual([]);
  });

  it('refuses a corrupted blob and leaves nothing of the pull in the store', async () => {
    const client = new RegistryClient({ registry: registry.host });
    // a layer of random bytes: registry storage is shared by digest, corrupting a common layer would hit other tests
    const corrupt = await buildTestLayers({ bigBytes: 256 * 1024 });
    const repo = randomName('berth/corrupt');
    const image = await pushTestImage(client, repo, 'v1', corrupt);
    // flip a byte of that layer inside the registry's own storage, keeping its size
    const victim = corrupt[3]!;
    const hex = victim.digest.slice(7);
    const data = join(registry.dir, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = readFileSync(data);
    bytes[bytes.length - 20] = (bytes[bytes.length - 20]! + 1) % 256;
    writeFileSync(data, bytes);

    const store = await tempStore();
    const err = await store.pull(image.ref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect(err).toMatchObject({ code: 'EDIGEST' });
    expect((err as Error).message).toContain(`blob ${victim.digest}: content has digest sha256:`);
    expect(await store.list()).toEqual([]);
    expect(blobFiles(store)).toEqual([]);
    expect(ingestFiles(store)).toEqual([]);
    expect(readdirSync(join(store.root, 'leases'))).toEqual([]);
  });

  it('resumes an interrupted layer download with a Range request', async () => {
    const client = new RegistryClient({ registry: registry.host });
    const big = await buildTestLayers({ bigBytes: 48 * 1024 * 1024 });
    const image = await pushTestImage(client, randomName('berth/big'), 'v1', big);
    const bigDigest = big[3]!.digest;
    const store = await tempStore();
    const ctl = new AbortController();
    const first = await store
      .pull(image.ref, {
        signal: ctl.signal,
        onProgress: (e) => {
          if (e.type === 'layer-progress' && e.digest === bigDigest && e.bytes > 8 * 1024 * 1024) ctl.abort();
        },
      })
      .catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 'EABORT' });
    const partial = statSync(store.partialPath(bigDigest)).size;
    expect(partial).toBeGreaterThan(8 * 1024 * 1024);
    expect(partial).toBeLessThan(big[3]!.blob.length);
    expect(await store.list()).toEqual([]);

    const events: PullEvent[] = [];
    const record = await store.pull(image.ref, { onProgress: (e) => events.push(e) });
    const start = events.find((e) => e.type === 'layer-start' && e.digest === bigDigest);
    expect(start).toMatchObject({ offset: partial });
    expect(sha256(readFileSync(store.blobPath(bigDigest)))).toBe(bigDigest);
    expect(record.layers[3]!.diffId).toBe(big[3]!.diffId);
    expect(ingestFiles(store)).toEqual([]);
  });
});

describe('authenticated registries', () => {
  const user = { username: 'alice', password: `pw-${Math.random().toString(36).slice(2)}` };

  it('uses basic auth from a docker config.json and rejects a wrong password clearly', async () => {
    const registry = await startRegistry({ basic: user });
    try {
      const client = new RegistryClient({ registry: registry.host, credentials: user });
      const image = await pushTestImage(client, randomName('berth/private'), 'v1', layers.slice(0, 1));
      const dir = await mkdtemp(join(tmpdir(), 'berth-auth-'));
      tempDirs.push(dir);
      const good = join(dir, 'good.json');
      writeFileSync(
        good,
        JSON.stringify({
          auths: {
            [registry.host]: { auth: Buffer.from(`${user.username}:${user.password}`).toString('base64') },
          },
        }),
      );
      const store = await tempStore();
      const record = await store.pull(image.ref, { auth: { configFile: good } });
      expect(record.digest).toBe(image.manifestDigest);

      const bad = join(dir, 'bad.json');
      writeFileSync(
        bad,
        JSON.stringify({ auths: { [`http://${registry.host}`]: { username: 'alice', password: 'wrong' } } }),
      );
      const other = await tempStore();
      const err = await other.pull(image.ref, { auth: { configFile: bad } }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EAUTH', status: 401 });
      expect((err as Error).message).toBe(
        `registry ${registry.host} rejected the credentials of alice for ${image.repository} (from ${bad}): check them, then "berth login ${registry.host}" again`,
      );

      const none = await other
        .pull(image.ref, { auth: { configFile: join(dir, 'missing.json') } })
        .catch((e: unknown) => e);
      expect(none).toMatchObject({ code: 'EAUTH' });
      expect((none as Error).message).toBe(
        `registry ${registry.host} requires authentication and berth has no credentials for it: log in with "berth login ${registry.host}" (or pass --creds USER:PASSWORD or --authfile FILE)`,
      );
      expect(await other.list()).toEqual([]);
    } finally {
      await registry.stop();
    }
  });

  it('gets bearer tokens from the realm of a WWW-Authenticate challenge and caches them', async () => {
    const registry = await startRegistry({ token: user });
    try {
      const pusher = new RegistryClient({ registry: registry.host, credentials: user });
      const image = await pushTestImage(pusher, randomName('berth/tokened'), 'v1', layers.slice(0, 2));
      const store = await tempStore();
      const before = registry.tokenRequests!.length;
      const record = await store.pull(image.ref, { auth: { configFile: '/nonexistent/config.json' } });
      expect(record.layers).toHaveLength(2);
      const asked = registry.tokenRequests!.slice(before);
      // one anonymous token for the repository, reused for manifest, config and both layers
      expect(asked).toEqual([{ scope: `repository:${image.repository}:pull`, user: undefined }]);

      const wrong = new RegistryClient({
        registry: registry.host,
        credentials: { username: 'alice', password: 'nope' },
      });
      const err = await wrong.pushBlob(image.repository, Buffer.from('x')).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EAUTH', status: 401 });
      expect((err as Error).message).toMatch(
        /^token service 127\.0\.0\.1:\d+ rejected the credentials of alice: check them, then "berth login 127\.0\.0\.1:\d+" again$/,
      );
    } finally {
      await registry.stop();
    }
  });
});

describe('a hostile registry', () => {
  it('cannot make berth read an endless token answer or error page', async () => {
    const { createServer } = await import('node:http');
    const big = Buffer.alloc(1024 * 1024, 0x20);
    const endless = (res: import('node:http').ServerResponse, status: number, type: string) => {
      res.writeHead(status, { 'content-type': type });
      let sent = 0;
      const more = () => {
        while (sent < 256 && res.write(big)) sent++;
        if (sent < 256) res.once('drain', more);
        else res.end();
      };
      more();
    };
    let served = 0;
    const server = createServer((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end('{}');
      if (req.url?.startsWith('/token')) {
        served++;
        return void endless(res, 200, 'application/json');
      }
      if (req.url?.includes('/tokened/')) {
        const { port } = server.address() as { port: number };
        return void res
          .writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="t"` })
          .end();
      }
      // an error page that does not stop: only its start is read for the message
      endless(res, 500, 'application/json');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const client = new RegistryClient({ registry: host });
      await expect(client.getManifest('tokened', 'x')).rejects.toThrow(
        /token service 127\.0\.0\.1:\d+'s answer is larger than 1048576 bytes: refused/,
      );
      expect(served).toBe(1);
      const fresh = new RegistryClient({ registry: host }); // the first remembers the challenge
      const err = await fresh.getManifest('broken', 'x').catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 500 });
      expect(process.memoryUsage().rss).toBeLessThan(1024 ** 3);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('cannot make a pull hold more than 4 MiB of manifest in memory, nor a config bigger than 16 MiB', async () => {
    const { createServer } = await import('node:http');
    const big = Buffer.alloc(1024 * 1024, 0x20);
    const server = createServer((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end('{}');
      if (req.url?.endsWith('/manifests/endless')) {
        // no length given: a body that does not stop
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
        let sent = 0;
        const more = () => {
          while (sent < 64 && res.write(big)) sent++;
          if (sent < 64) res.once('drain', more);
          else res.end();
        };
        return void more();
      }
      if (req.url?.endsWith('/manifests/claims')) {
        // a length that says it all
        res.writeHead(200, {
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
          'content-length': String(8 * 1024 ** 3),
        });
        return void res.write('{');
      }
      if (req.url?.endsWith('/manifests/hugeconfig')) {
        const body = JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: {
            mediaType: 'application/vnd.oci.image.config.v1+json',
            digest: `sha256:${'a'.repeat(64)}`,
            size: 8 * 1024 ** 3,
          },
          layers: [],
        });
        return void res
          .writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' })
          .end(body);
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const client = new RegistryClient({ registry: host });
      await expect(client.getManifest('x', 'endless')).rejects.toThrow(/larger than 4194304 bytes: refused/);
      await expect(client.getManifest('x', 'claims')).rejects.toThrow(/larger than 4194304 bytes: refused/);
      const store = await tempStore();
      await expect(store.pull(`${host}/x:hugeconfig`)).rejects.toThrow(
        /is 8589934592 bytes, more than 16777216: refused/,
      );
      expect(await store.list()).toEqual([]);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
