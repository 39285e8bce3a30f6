import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImageConfig } from '@berth/image';
import { afterAll, describe, expect, it } from 'vitest';
import { type BundleSpec, bundleFromImage, mergeEnv, resolveImageUser } from '../../src/image.js';

const base: BundleSpec = {
  ociVersion: '1.2.0',
  process: {
    terminal: false,
    user: { uid: 0, gid: 0 },
    args: ['sh'],
    env: ['PATH=/bin', 'TERM=xterm'],
    cwd: '/',
  },
  root: { path: 'rootfs' },
  mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
  linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }] },
};

const image: ImageConfig = {
  architecture: 'amd64',
  os: 'linux',
  created: '2024-01-02T03:04:05Z',
  config: {
    Entrypoint: ['/entry'],
    Cmd: ['--serve'],
    Env: ['PATH=/usr/bin:/bin', 'A=1'],
    WorkingDir: '/srv',
    User: 'bob',
    Volumes: { '/data': {} },
    Labels: {
      'org.example': 'x',
      // berth's own annotations are the operator's to set, never an image's
      'org.berth.backend': 'vm',
      'org.berth.userns.host-root': 'true',
    },
    ExposedPorts: { '80/tcp': {}, '53/udp': {} },
    StopSignal: 'SIGQUIT',
  },
  rootfs: { type: 'layers', diff_ids: [] },
};

const rootfs = mkdtempSync(join(tmpdir(), 'berth-bundle-'));
mkdirSync(join(rootfs, 'etc'));
writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n');
writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nbob:x:1000:\nwheel:x:10:bob,alice\naudio:x:29:bob\n');
afterAll(() => rmSync(rootfs, { recursive: true, force: true }));

describe('bundleFromImage', () => {
  it('applies the image spec conversion rules over the base spec', async () => {
    const spec = await bundleFromImage(image, base, { rootfs });
    expect(spec.process?.args).toEqual(['/entry', '--serve']);
    expect(spec.process?.env).toEqual(['PATH=/usr/bin:/bin', 'TERM=xterm', 'A=1']);
    expect(spec.process?.cwd).toBe('/srv');
    expect(spec.process?.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29] });
    expect(spec.annotations).toMatchObject({
      'org.example': 'x',
      'org.opencontainers.image.exposedPorts': '80/tcp,53/udp',
      'org.opencontainers.image.stopSignal': 'SIGQUIT',
      'org.opencontainers.image.architecture': 'amd64',
    });
    expect(Object.keys(spec.annotations ?? {}).filter((k) => k.startsWith('org.berth.'))).toEqual([]);
    expect(spec.mounts).toEqual(base.mounts);
    expect(base.process?.args).toEqual(['sh']);
  });

  it('lets the user override command, entrypoint, env, user and resources', async () => {
    const spec = await bundleFromImage(image, base, {
      args: ['echo', 'hi'],
      env: ['A=2', 'B=3'],
      user: '1001:1002',
      cwd: '/tmp',
      readOnly: true,
      memory: 64 * 1024 * 1024,
      cpus: 1.5,
      pidsLimit: 32,
      network: 'host',
      volumes: 'tmpfs',
      mounts: [{ destination: '/data', source: '/srv/data', type: 'bind', options: ['rbind', 'ro'] }],
    });
    expect(spec.process?.args).toEqual(['/entry', 'echo', 'hi']);
    expect(spec.process?.env).toEqual(['PATH=/usr/bin:/bin', 'TERM=xterm', 'A=2', 'B=3']);
    expect(spec.process?.user).toEqual({ uid: 1001, gid: 1002 });
    expect(spec.root).toEqual({ path: 'rootfs', readonly: true });
    expect(spec.linux?.resources).toEqual({
      memory: { limit: 67108864 },
      cpu: { period: 100000, quota: 150000 },
      pids: { limit: 32 },
    });
    expect(spec.linux?.namespaces?.map((n) => n.type)).toEqual(['pid', 'mount']);
    // the user's -v wins over the image's Volumes entry for the same path
    expect(spec.mounts?.filter((m) => m.destination === '/data')).toEqual([
      { destination: '/data', source: '/srv/data', type: 'bind', options: ['rbind', 'ro'] },
    ]);

    const ep = await bundleFromImage(image, base, { entrypoint: ['/bin/sh'], user: '0' });
    expect(ep.process?.args).toEqual(['/bin/sh']);
  });

  it('explains what is wrong', async () => {
    const bare: ImageConfig = { ...image, config: {} };
    await expect(bundleFromImage(bare, base)).rejects.toThrow(
      'process.args: the image has no Entrypoint or Cmd and no command was given',
    );
    await expect(bundleFromImage(image, base)).rejects.toThrow(
      'image user "bob": names need the rootfs to read /etc/passwd and /etc/group from',
    );
    await expect(resolveImageUser('carol', rootfs)).rejects.toThrow(
      'image user "carol": no user carol in /etc/passwd of the image',
    );
    await expect(resolveImageUser('bob:nogroup', rootfs)).rejects.toMatchObject({ code: 'EBUNDLE' });
    expect(await resolveImageUser('bob:wheel', rootfs)).toEqual({ uid: 1000, gid: 10, username: 'bob' });
    expect(await resolveImageUser('4242', rootfs)).toEqual({ uid: 4242, gid: 0 });
    // (uid_t)-1 is "unchanged" to setresuid: an image saying so would run as root
    for (const u of ['4294967295', '0:4294967295', '1000:4294967295', '99999999999', '4294967296'])
      await expect(resolveImageUser(u, rootfs)).rejects.toThrow(
        /is not a user or group id \(the largest is 4294967294/,
      );
    expect(await resolveImageUser('4294967294', rootfs)).toEqual({ uid: 4294967294, gid: 0 });
  });

  it('merges env by key, later lists winning', () => {
    expect(mergeEnv(['A=1', 'B=2'], ['B=3', 'C'], undefined, ['A=4'])).toEqual(['A=4', 'B=3', 'C']);
  });
});
