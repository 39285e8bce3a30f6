// Integration: images through the CLI, from a real docker-registry on 127.0.0.1 into a private store.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256, type TarInput, writeTar } from '../../../packages/image/src/index.js';
import { Sandbox } from './helpers.js';
import {
  oneLineError,
  type PushedImage,
  registryWithImage,
  type StartedRegistry,
  storeEntries,
  type TestLayer,
} from './images-helpers.js';

const sb = new Sandbox();
let registry: StartedRegistry;
let pushed: PushedImage;
let layers: TestLayer[];

beforeAll(async () => {
  ({ registry, pushed, layers } = await registryWithImage());
});
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
});
afterAll(async () => {
  await registry.stop();
  expect(existsSync(registry.dir)).toBe(false);
  sb.cleanup();
  expect(existsSync(sb.dir)).toBe(false);
});

interface Listed {
  name: string;
  repository: string;
  tag: string;
  digest: string;
  size: number;
}

function images(): Listed[] {
  const r = sb.berth(['images', '--format', 'json']);
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as Listed[];
}

const diffHex = () => layers.map((l) => l.diffId.slice(7));

describe('pull, images, run, rmi, prune', () => {
  it('pulls, lists, runs from the store, and refuses rmi while a container uses the image', () => {
    const pull = sb.berth(['pull', '-q', pushed.ref]);
    expect(pull.stderr).toBe('');
    expect(pull.status).toBe(0);
    expect(pull.stdout).toBe(`${pushed.manifestDigest}\n`);
    const listed = images().find((i) => i.name === pushed.ref);
    expect(listed).toMatchObject({ tag: 'v1', digest: pushed.manifestDigest });
    const table = sb.berth(['images']).stdout;
    expect(table).toMatch(
      new RegExp(`${registry.host}/${pushed.repository}\\s+v1\\s+${pushed.manifestDigest.slice(7, 19)}`),
    );

    const hi = sb.berth(['run', '--rm', pushed.ref, 'echo', 'hi']);
    expect(hi.stderr).toBe('');
    expect(hi.stdout).toBe('hi\n');
    expect(hi.status).toBe(0);
    // what the layers mean: the whiteout hides etc/removed-later, the opaque dir keeps only layer 2's entry
    const tree = sb.berth([
      'run',
      '--rm',
      '-e',
      'X=1',
      pushed.ref,
      'sh',
      '-c',
      'cat /etc/hello /usr/share/zstd.txt; ls /opt/data; test -e /etc/removed-later || echo gone; echo $FROM_IMAGE$X',
    ]);
    expect(tree.stdout).toBe('hello from layer 2\nfrom a zstd layer\nc\ngone\nyes1\n');
    // unpacked once, shared by every container of the image
    expect(storeEntries(sb.store, 'layers/sha256')).toEqual(expect.arrayContaining(diffHex()));

    const id = sb.id('img');
    expect(sb.berth(['run', '--name', id, pushed.ref, 'true']).status).toBe(0);
    const refused = sb.berth(['rmi', pushed.ref]);
    expect(oneLineError(refused)).toBe(
      `berth: image ${pushed.ref} is used by a container: remove the container first`,
    );
    const pruned = sb.berth(['prune', '-a']);
    expect(pruned.status).toBe(0);
    expect(images().map((i) => i.name)).toContain(pushed.ref);
    expect(storeEntries(sb.store, 'layers/sha256')).toEqual(expect.arrayContaining(diffHex()));

    expect(sb.berth(['delete', id]).status).toBe(0);
    const rmi = sb.berth(['rmi', pushed.ref]);
    expect(rmi.stderr).toBe('');
    expect(rmi.stdout).toBe(`removed ${pushed.ref}\n`);
    expect(images().map((i) => i.name)).not.toContain(pushed.ref);
    const blobs = storeEntries(sb.store, 'blobs/sha256');
    for (const l of layers) expect(blobs).not.toContain(l.digest.slice(7));
    expect(blobs).not.toContain(pushed.manifestDigest.slice(7));
    const left = storeEntries(sb.store, 'layers/sha256');
    for (const d of diffHex()) expect(left).not.toContain(d);
    expect(sb.states()).toEqual([]);
  });

  it('prune -a removes unused images but never the one a kept container stands on', () => {
    expect(sb.berth(['pull', '-q', pushed.ref]).status).toBe(0);
    const id = sb.id('prune');
    expect(sb.berth(['run', '--name', id, 'busybox', 'true']).status).toBe(0);
    const r = sb.berth(['prune', '-a']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`removed ${pushed.ref}\n`);
    expect(images().map((i) => i.name)).toEqual(['localhost/busybox:latest']);
    expect(storeEntries(sb.store, 'ingest')).toEqual([]);
    expect(sb.berth(['run', '--rm', 'busybox', 'echo', 'still here']).stdout).toBe('still here\n');
    expect(sb.berth(['delete', id]).status).toBe(0);
    expect(sb.berth(['prune', '-a']).status).toBe(0);
    expect(images()).toEqual([]);
    expect(storeEntries(sb.store, 'layers/sha256')).toEqual([]);
    expect(storeEntries(sb.store, 'blobs/sha256')).toEqual([]);
  });
});

describe('load and save', () => {
  it.each(['oci-archive', 'docker-archive', 'oci-dir'])('round-trips %s with the same digests', (format) => {
    expect(sb.berth(['pull', '-q', pushed.ref]).status).toBe(0);
    const before = images().find((i) => i.name === pushed.ref)!;
    const out = join(sb.dir, `saved-${format}-${Math.random().toString(36).slice(2, 7)}`);
    const save = sb.berth(['save', '-o', out, '--format', format, pushed.ref]);
    expect(save.status).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(sb.berth(['rmi', pushed.ref]).status).toBe(0);
    expect(storeEntries(sb.store, 'blobs/sha256')).not.toContain(layers[0]!.digest.slice(7));

    const load = sb.berth(['load', '-i', out]);
    expect(load.stderr).toBe('');
    expect(load.stdout).toBe(`loaded ${pushed.ref} ${pushed.manifestDigest}\n`);
    const after = images().find((i) => i.name === pushed.ref)!;
    expect(after).toEqual(before);
    const record = JSON.parse(
      readFileSync(join(sb.store, 'images', `${encodeURIComponent(pushed.ref)}.json`), 'utf8'),
    );
    expect(record.layers.map((l: { diffId: string }) => l.diffId)).toEqual(layers.map((l) => l.diffId));
    expect(record.config.digest).toBe(pushed.configDigest);
    expect(sb.berth(['run', '--rm', pushed.ref, 'cat', '/etc/hello']).stdout).toBe('hello from layer 2\n');
    expect(sb.berth(['rmi', pushed.ref]).status).toBe(0);
    expect(storeEntries(sb.store, 'ingest')).toEqual([]);
  });

  it('loads a pre-25 docker save archive (layer.tar files, a symlinked duplicate, RepoTags)', async () => {
    const tar = async (entries: TarInput[]) => {
      const chunks: Buffer[] = [];
      for await (const c of writeTar(entries)) chunks.push(c);
      return Buffer.concat(chunks);
    };
    const layer = await tar([
      { name: 'etc', type: 'dir', mode: 0o755 },
      { name: 'etc/legacy', type: 'file', body: Buffer.from('legacy\n') },
    ]);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [layers[0]!.diffId, sha256(layer)] },
      }),
    );
    const configName = `${sha256(config).slice(7)}.json`;
    const busyboxTar = layers[0]!.blob; // the base layer is a plain tar
    const archive = await tar([
      { name: 'aaa', type: 'dir' },
      { name: 'aaa/layer.tar', type: 'file', body: busyboxTar },
      { name: 'bbb', type: 'dir' },
      { name: 'bbb/layer.tar', type: 'file', body: layer },
      { name: 'ccc', type: 'dir' },
      // docker links a layer that appears twice instead of storing it again
      { name: 'ccc/layer.tar', type: 'symlink', linkname: '../bbb/layer.tar' },
      { name: configName, type: 'file', body: config },
      {
        name: 'manifest.json',
        type: 'file',
        body: Buffer.from(
          JSON.stringify([
            { Config: configName, RepoTags: ['legacy/app:old'], Layers: ['aaa/layer.tar', 'ccc/layer.tar'] },
          ]),
        ),
      },
    ]);
    const file = join(sb.dir, 'legacy.tar.gz');
    writeFileSync(file, gzipSync(archive));
    const load = sb.berth(['load', '-i', file]);
    expect(load.stderr).toBe('');
    expect(load.stdout).toMatch(/^loaded docker\.io\/legacy\/app:old sha256:[a-f0-9]{64}\n$/);
    expect(sb.berth(['run', '--rm', 'legacy/app:old', 'cat', '/etc/legacy']).stdout).toBe('legacy\n');
    expect(sb.berth(['rmi', 'legacy/app:old']).status).toBe(0);
  });
});

describe('short names and errors', () => {
  it('busybox is docker.io/library/busybox when the store has it, else the built-in image', () => {
    expect(sb.berth(['pull', '-q', pushed.ref]).status).toBe(0);
    const dir = join(sb.dir, `layout-${Math.random().toString(36).slice(2, 7)}`);
    expect(sb.berth(['save', '-o', dir, '--format', 'oci-dir', pushed.ref]).status).toBe(0);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
    index.manifests[0].annotations['io.containerd.image.name'] = 'docker.io/library/busybox:latest';
    index.manifests[0].annotations['org.opencontainers.image.ref.name'] = 'latest';
    writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
    expect(sb.berth(['load', '-i', dir]).status).toBe(0);
    expect(sb.berth(['run', '--rm', 'busybox', 'cat', '/etc/hello']).stdout).toBe('hello from layer 2\n');
    expect(sb.berth(['rmi', 'busybox', pushed.ref]).status).toBe(0);
    const builtin = sb.berth(['run', '--rm', 'busybox', 'sh', '-c', 'test -e /etc/hello || echo builtin']);
    expect(builtin.stdout).toBe('builtin\n');
  });

  it('says in one line what is wrong, with exit status 1', () => {
    expect(oneLineError(sb.berth(['run', '--rm', 'Bad!Ref', 'true']))).toMatch(
      /^berth: image reference "Bad!Ref": repository .* must be lowercase/,
    );
    expect(oneLineError(sb.berth(['pull', '-q', `${registry.host}/berth/missing:1`]))).toMatch(
      /^berth: .*berth\/missing.*(not found|unknown)/i,
    );
    expect(oneLineError(sb.berth(['run', '-q', '--rm', `${registry.host}/berth/missing:1`, 'true']))).toMatch(
      /berth\/missing/,
    );
    expect(oneLineError(sb.berth(['rmi', 'nosuch/image:1']))).toBe(
      `berth: image nosuch/image:1 is not in the store at ${sb.store}: pull it first`,
    );
    expect(sb.berth(['rmi', '-f', 'nosuch/image:1']).status).toBe(0);
    expect(oneLineError(sb.berth(['save', '-o', join(sb.dir, 'x.tar'), 'nosuch/image:1']))).toContain(
      'image nosuch/image:1 is not in the store',
    );
    expect(oneLineError(sb.berth(['load', '-i', join(sb.dir, 'does-not-exist.tar')]))).toBe(
      `berth: ${join(sb.dir, 'does-not-exist.tar')}: does not exist`,
    );
    expect(oneLineError(sb.berth(['run', '--memory', 'lots', 'busybox', 'true']))).toBe(
      'berth: --memory must be a size like 64m or 1g, not "lots"',
    );
    expect(existsSync(join(sb.dir, 'x.tar'))).toBe(false);
    expect(sb.states()).toEqual([]);
  });
});

describe('an interrupted pull', () => {
  it('resumes where a killed berth pull stopped, with a Range request', async () => {
    const { ImageStore, RegistryClient } = await import('../../../packages/image/src/index.js');
    const { buildTestLayers, pushTestImage, randomName } = await import(
      '../../../packages/image/test/helpers/image.js'
    );
    const big = await buildTestLayers({ bigBytes: 64 * 1024 * 1024 });
    const image = await pushTestImage(
      new RegistryClient({ registry: registry.host }),
      randomName('berth/killed'),
      'v1',
      big,
    );
    const bigDigest = big[3]!.digest;
    const store = await ImageStore.open(sb.store);
    const partialPath = store.partialPath(bigDigest);
    const size = () => (existsSync(partialPath) ? statSync(partialPath).size : 0);

    const child = sb.spawn(['pull', '-q', image.ref]);
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, s) => r(s)));
    while (size() < 8 * 1024 * 1024 && child.exitCode === null) await new Promise((r) => setTimeout(r, 1));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const partial = size();
    expect(partial).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(partial).toBeLessThan(big[3]!.blob.length);

    // the next pull starts the layer at the offset the killed one reached
    const starts: number[] = [];
    const record = await store.pull(image.ref, {
      onProgress: (e) => {
        if (e.type === 'layer-start' && e.digest === bigDigest) starts.push(e.offset);
      },
    });
    expect(starts).toEqual([partial]);
    expect(record.layers[3]!.diffId).toBe(big[3]!.diffId);
    expect(sha256(readFileSync(store.blobPath(bigDigest)))).toBe(bigDigest);
    expect(existsSync(partialPath)).toBe(false);
    expect(sb.berth(['rmi', image.ref]).status).toBe(0);
  });
});
