// Integration: `berth run IMAGE` with a hostile layer, pulled from a real docker-registry on 127.0.0.1.
// The layer holds a directory (setuid, setgid, foreign owner, old mtime) and then a symlink of the same name
// pointing at a host file: the directory's metadata must never reach that file (issue 7).

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, sha256 } from '../../../packages/image/src/index.js';
import {
  buildTestLayers,
  pushTestImage,
  randomName,
  type TestLayer,
  tarBuffer,
} from '../../../packages/image/test/helpers/image.js';
import { type StartedRegistry, startRegistry } from '../../../packages/image/test/helpers/registry.js';
import { Sandbox } from './helpers.js';

const sb = new Sandbox();
const hostDir = mkdtempSync(join(tmpdir(), 'berth-layer-victim-'));
const victim = join(hostDir, 'victim');
let registry: StartedRegistry;
let ref: string;
/** an image whose /etc/passwd and /etc/group link to host files (a fifo among them) */
let accountsRef: string;
const hostPasswd = join(hostDir, 'passwd');
const hostFifo = join(hostDir, 'group-fifo');

async function layerOf(entries: Parameters<typeof tarBuffer>[0]): Promise<TestLayer> {
  const tar = await tarBuffer(entries);
  const blob = gzipSync(tar);
  return {
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    blob,
    digest: sha256(blob),
    diffId: sha256(tar),
  };
}

function evilLayer(): Promise<TestLayer> {
  return layerOf([
    { name: 'evil', type: 'dir', mode: 0o6777, uid: 4242, gid: 4242, mtime: 1234 },
    { name: 'evil', type: 'symlink', linkname: victim },
  ]);
}

beforeAll(async () => {
  writeFileSync(victim, 'host data\n');
  chmodSync(victim, 0o644);
  chownSync(victim, 0, 0);
  utimesSync(victim, 1_600_000_000, 1_600_000_000);
  writeFileSync(hostPasswd, 'hostonly:x:4321:4321::/:/bin/sh\n');
  spawnSync('mkfifo', [hostFifo]);
  registry = await startRegistry();
  accountsRef = (
    await pushTestImage(new RegistryClient({ registry: registry.host }), randomName('berth/accounts'), 'v1', [
      ...(await buildTestLayers()),
      await layerOf([
        { name: 'etc/passwd', type: 'symlink', linkname: hostPasswd },
        { name: 'etc/group', type: 'symlink', linkname: hostFifo },
      ]),
    ])
  ).ref;
  const layers = [...(await buildTestLayers()), await evilLayer()];
  ref = (
    await pushTestImage(
      new RegistryClient({ registry: registry.host }),
      randomName('berth/evil'),
      'v1',
      layers,
    )
  ).ref;
});
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
});
afterAll(async () => {
  await registry.stop();
  sb.cleanup();
  rmSync(hostDir, { recursive: true, force: true });
  expect(existsSync(sb.dir)).toBe(false);
});

describe("an image's account files that link to the host's", () => {
  it('are read in the image: a user name only the host has is unknown, a link to a host fifo does not hang', () => {
    expect(sb.berth(['pull', '-q', accountsRef]).status).toBe(0);
    const named = sb.berth(['run', '--rm', '--user', 'hostonly', accountsRef, 'id', '-u']);
    expect(named.status).not.toBe(0);
    expect(named.stderr).toContain('no user hostonly in /etc/passwd of the image');
    // the group file links to a host fifo: never opened (a read would wait for a writer forever)
    const grouped = sb.berth(['run', '--rm', '--user', '0:hostgroup', accountsRef, 'id', '-u']);
    expect(grouped.error).toBeUndefined();
    expect(grouped.stderr).toContain('no group hostgroup in /etc/group of the image');
    expect(sb.states()).toEqual([]);
  });
});

describe('berth run IMAGE with a directory-then-symlink layer', () => {
  it('leaves the host file the symlink names alone', () => {
    const before = lstatSync(victim);
    expect(sb.berth(['pull', '-q', ref]).status).toBe(0);
    const r = sb.berth(['run', '--rm', ref, '/bin/busybox', 'readlink', '/evil']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${victim}\n`);
    expect(r.status).toBe(0);
    const after = lstatSync(victim);
    expect({
      mode: (after.mode & 0o7777).toString(8),
      owner: `${after.uid}:${after.gid}`,
      mtime: after.mtimeMs,
      ctime: after.ctimeMs,
    }).toEqual({
      mode: '644',
      owner: '0:0',
      mtime: 1_600_000_000_000,
      ctime: before.ctimeMs,
    });
  });
});
