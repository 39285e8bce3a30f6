// Builds a multi-layer image from directories of this machine and pushes it to the loopback registry.
// usage: node push-image.mjs HOST REPO:TAG DIR...
import { execFileSync } from 'node:child_process';
import { MediaType, RegistryClient, sha256 } from '@berth/image';

const [host, name, ...dirs] = process.argv.slice(2);
const [repo, tag] = name.split(':');
const client = new RegistryClient({ registry: host });
const layers = [];
for (const dir of dirs) {
  const tar = execFileSync('tar', ['--sort=name', '-C', '/', '-cf', '-', dir.replace(/^\//, '')], {
    maxBuffer: 2 ** 31,
  });
  const gz = execFileSync('gzip', ['-1', '-c'], { input: tar, maxBuffer: 2 ** 31 });
  await client.pushBlob(repo, gz);
  layers.push({
    mediaType: MediaType.ociLayerGzip,
    digest: sha256(gz),
    size: gz.length,
    diffId: sha256(tar),
  });
}
const config = Buffer.from(
  JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  }),
);
await client.pushBlob(repo, config);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: sha256(config), size: config.length },
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  }),
);
await client.putManifest(repo, tag, MediaType.ociManifest, manifest);
const total = layers.reduce((n, l) => n + l.size, 0);
console.log(`pushed ${host}/${name}: ${layers.length} layers, ${(total / 1e6).toFixed(1)} MB compressed`);
