import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { MediaType, type RegistryClient, sha256, type TarInput, writeTar } from '../../src/index.js';

export const MTIME = 1_700_000_000;

export async function tarBuffer(entries: TarInput[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of writeTar(entries)) chunks.push(c);
  return Buffer.concat(chunks);
}

export interface TestLayer {
  mediaType: string;
  blob: Buffer;
  digest: string;
  diffId: string;
}

function layer(tar: Buffer, compression: 'none' | 'gzip' | 'zstd'): TestLayer {
  let blob = tar;
  let mediaType: string = MediaType.ociLayer;
  if (compression === 'gzip') {
    blob = gzipSync(tar, { level: 1 });
    mediaType = MediaType.ociLayerGzip;
  } else if (compression === 'zstd') {
    blob = execFileSync('zstd', ['-q', '-c', '-3'], { input: tar, maxBuffer: 1 << 30 });
    mediaType = MediaType.ociLayerZstd;
  }
  return { mediaType, blob, digest: sha256(blob), diffId: sha256(tar) };
}

const busybox = () => readFileSync('/bin/busybox');
const passwd = 'root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000:bob:/home/bob:/bin/sh\n';
const group = 'root:x:0:\nbob:x:1000:\nwheel:x:10:bob\n';

/**
 * Three layers that exercise unpack: plain tar (busybox, symlinks, a hard link, a fifo, a device node, an xattr,
 * owners and mtimes), gzip (a whiteout and an opaque directory), zstd (a new file). `bigBytes` adds a fourth,
 * gzip layer of random data for resume tests.
 */
export async function buildTestLayers(options: { bigBytes?: number } = {}): Promise<TestLayer[]> {
  const bb = busybox();
  const base = await tarBuffer([
    { name: 'bin', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'bin/busybox', type: 'file', mode: 0o755, body: bb, mtime: MTIME },
    { name: 'bin/busybox-hard', type: 'link', linkname: 'bin/busybox', mtime: MTIME },
    ...['sh', 'echo', 'cat', 'ls', 'id', 'true'].map(
      (n): TarInput => ({ name: `bin/${n}`, type: 'symlink', linkname: 'busybox', mtime: MTIME }),
    ),
    { name: 'etc', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'etc/passwd', type: 'file', mode: 0o644, body: Buffer.from(passwd), mtime: MTIME },
    { name: 'etc/group', type: 'file', mode: 0o644, body: Buffer.from(group), mtime: MTIME },
    { name: 'etc/removed-later', type: 'file', mode: 0o600, body: Buffer.from('gone\n'), mtime: MTIME },
    { name: 'opt', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'opt/data', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'opt/data/a', type: 'file', body: Buffer.from('a\n'), mtime: MTIME },
    { name: 'opt/data/b', type: 'file', body: Buffer.from('b\n'), mtime: MTIME },
    { name: 'home', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'home/bob', type: 'dir', mode: 0o750, uid: 1000, gid: 1000, mtime: MTIME },
    {
      name: 'home/bob/notes',
      type: 'file',
      mode: 0o640,
      uid: 1000,
      gid: 1000,
      body: Buffer.from('bob\n'),
      mtime: MTIME + 60,
      xattrs: { 'user.berth': 'test-value' },
    },
    { name: 'tmp', type: 'dir', mode: 0o1777, mtime: MTIME },
    { name: 'run', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'run/fifo', type: 'fifo', mode: 0o600, mtime: MTIME },
    { name: 'dev', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3, mtime: MTIME },
    { name: 'usr', type: 'dir', mode: 0o755, mtime: MTIME },
  ]);
  const second = await tarBuffer([
    { name: 'etc', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'etc/.wh.removed-later', type: 'file', mtime: MTIME },
    { name: 'etc/hello', type: 'file', body: Buffer.from('hello from layer 2\n'), mtime: MTIME },
    { name: 'opt/data', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'opt/data/c', type: 'file', body: Buffer.from('c\n'), mtime: MTIME },
    // the opaque marker after a sibling: it must still hide only the lower layers' entries
    { name: 'opt/data/.wh..wh..opq', type: 'file', mtime: MTIME },
  ]);
  const third = await tarBuffer([
    { name: 'usr/share', type: 'dir', mode: 0o755, mtime: MTIME },
    { name: 'usr/share/zstd.txt', type: 'file', body: Buffer.from('from a zstd layer\n'), mtime: MTIME },
  ]);
  const layers = [layer(base, 'none'), layer(second, 'gzip'), layer(third, 'zstd')];
  if (options.bigBytes !== undefined) {
    const big = await tarBuffer([
      { name: 'big.bin', type: 'file', body: randomBytes(options.bigBytes), mtime: MTIME },
    ]);
    layers.push(layer(big, 'gzip'));
  }
  return layers;
}

export interface PushedImage {
  ref: string;
  repository: string;
  manifestDigest: string;
  indexDigest?: string;
  configDigest: string;
  layers: TestLayer[];
}

export function imageConfig(
  layers: TestLayer[],
  architecture = 'amd64',
  extra: Record<string, unknown> = {},
) {
  return {
    created: '2024-01-02T03:04:05Z',
    architecture,
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'FROM_IMAGE=yes'],
      Cmd: ['/bin/sh'],
      WorkingDir: '/',
      Labels: { 'org.example.test': 'berth' },
      ...extra,
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: [],
  };
}

/** Pushes layers + config + manifest (and, with `index`, an index naming amd64 and a fake arm64). */
export async function pushTestImage(
  client: RegistryClient,
  repository: string,
  tag: string,
  layers: TestLayer[],
  options: { index?: boolean; mediaTypeOverride?: Partial<Record<number, string>> } = {},
): Promise<PushedImage> {
  for (const l of layers) await client.pushBlob(repository, l.blob);
  const configBody = Buffer.from(JSON.stringify(imageConfig(layers)));
  const configDigest = await client.pushBlob(repository, configBody);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBody.length },
    layers: layers.map((l, i) => ({
      mediaType: options.mediaTypeOverride?.[i] ?? l.mediaType,
      digest: l.digest,
      size: l.blob.length,
    })),
  };
  const manifestBody = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = sha256(manifestBody);
  const out: PushedImage = {
    ref: `${client.registry}/${repository}:${tag}`,
    repository,
    manifestDigest,
    configDigest,
    layers,
  };
  if (!options.index) {
    await client.putManifest(repository, tag, MediaType.ociManifest, manifestBody);
    return out;
  }
  await client.putManifest(repository, manifestDigest, MediaType.ociManifest, manifestBody);
  // an arm64 image whose layer is the same busybox tar: selection has to pick by platform, not by position
  const armConfig = Buffer.from(JSON.stringify(imageConfig(layers.slice(0, 1), 'arm64')));
  const armConfigDigest = await client.pushBlob(repository, armConfig);
  const armManifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: armConfigDigest, size: armConfig.length },
      layers: [{ mediaType: layers[0]!.mediaType, digest: layers[0]!.digest, size: layers[0]!.blob.length }],
    }),
  );
  const armDigest = await client.putManifest(
    repository,
    sha256(armManifest),
    MediaType.ociManifest,
    armManifest,
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        {
          mediaType: MediaType.ociManifest,
          digest: armDigest,
          size: armManifest.length,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
        {
          mediaType: MediaType.ociManifest,
          digest: manifestDigest,
          size: manifestBody.length,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    }),
  );
  out.indexDigest = await client.putManifest(repository, tag, MediaType.ociIndex, index);
  return out;
}

export function randomName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
