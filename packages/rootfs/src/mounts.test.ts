import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MS } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { planRootfs, withMountLabel } from './mounts.js';

const bundle = mkdtempSync(join(tmpdir(), 'berth-mounts-'));
const rootfs = join(bundle, 'rootfs');
mkdirSync(rootfs);
writeFileSync(join(bundle, 'file.txt'), 'x');
afterAll(() => rmSync(bundle, { recursive: true, force: true }));

const base = {
  rootfs,
  bundle,
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc' },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    { destination: '/data', type: 'bind', source: 'file.txt', options: ['rbind', 'ro'] },
  ],
  maskedPaths: ['/proc/kcore'],
  readonlyPaths: ['/proc/sys'],
};

describe('planRootfs', () => {
  it('orders the steps as runc does: propagation, rootfs bind, mounts, /dev, pivot_root, paths', () => {
    const steps = planRootfs({ ...base, readonly: true });
    const ops = steps.map((s) => s.op);
    expect(steps[0]).toMatchObject({ op: 'mount', target: '/', flags: MS.SLAVE | MS.REC });
    expect(steps[1]).toMatchObject({ op: 'mount', source: rootfs, target: rootfs, flags: MS.BIND | MS.REC });
    // from here on, container paths are resolved against the root's fd by the launcher
    expect(steps[2]).toEqual({ op: 'root', path: rootfs });
    for (const s of steps
      .slice(3)
      .filter((s) => ['mkdir', 'mknod', 'mkfile', 'symlink', 'mask', 'readonly'].includes(s.op)))
      expect(s.inRoot).toBe(true);
    const pivot = ops.indexOf('pivotRoot');
    expect(ops.lastIndexOf('mknod')).toBeLessThan(pivot);
    expect(ops.indexOf('readonly')).toBeGreaterThan(pivot);
    expect(ops.indexOf('mask')).toBeGreaterThan(ops.indexOf('readonly'));
    expect(steps.at(-1)).toMatchObject({ op: 'mount', target: '/', flags: MS.BIND | MS.REMOUNT | MS.RDONLY });
  });

  it('refuses a word a bind mount cannot take (a misspelt flag would leave the mount without it)', () => {
    const bind = (options: string[]) => ({
      ...base,
      mounts: [{ destination: '/data', type: 'bind', source: 'file.txt', options }],
    });
    for (const [options, k] of [
      [['rbind', 'nosiud'], 1],
      [['bind', 'ro', 'nodve'], 2],
      [['noexce'], 0],
      [['rbind', 'size=10m'], 1],
    ] as const)
      expect(() => planRootfs(bind([...options]))).toThrow(
        `mounts[0].options[${k}]: ${JSON.stringify(options[k])} is not a mount option berth knows (a bind mount takes flags, not filesystem data)`,
      );
    // what a bind takes, and mount(8)'s userspace words
    const steps = planRootfs(
      bind(['rbind', 'ro', 'nosuid', 'nodev', 'noexec', 'rprivate', 'x-init.mkdir', 'defaults']),
    );
    expect(steps.find((s) => s.op === 'mount' && s.target === '/data')).toMatchObject({
      flags: MS.BIND | MS.REC | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC,
    });
  });

  it("makes the default devices and /dev links unless /dev is a bind mount (runc's rule)", () => {
    const devices = (mounts: typeof base.mounts) =>
      planRootfs({ ...base, mounts })
        .filter((s) => s.op === 'mknod' || s.op === 'symlink')
        .map((s) => (s as { path: string }).path);
    const all = [
      '/dev/null',
      '/dev/zero',
      '/dev/full',
      '/dev/random',
      '/dev/urandom',
      '/dev/tty',
      '/dev/fd',
      '/dev/ptmx',
    ];
    // a tmpfs on /dev, and the image's own /dev (no mount there)
    expect(devices(base.mounts)).toEqual(expect.arrayContaining(all));
    expect(devices(base.mounts.filter((m) => m.destination !== '/dev'))).toEqual(expect.arrayContaining(all));
    const bound = [
      ...base.mounts.filter((m) => m.destination !== '/dev'),
      { destination: '/dev', type: 'bind', source: '/dev', options: ['rbind'] },
    ];
    expect(devices(bound)).toEqual([]);
  });

  it('mounts a filesystem with its flags and data at the path inside the rootfs', () => {
    const dev = planRootfs(base).find((s) => s.op === 'mount' && s.fstype === 'tmpfs');
    expect(dev).toMatchObject({
      target: '/dev',
      inRoot: true,
      flags: MS.NOSUID | MS.STRICTATIME,
      data: 'mode=755,size=65536k',
    });
  });

  it('gives linux.mountLabel as context= to the mounts that take one, as runc (not bind, proc, sysfs, mqueue)', () => {
    const label = 'system_u:object_r:container_file_t:s0:c1,c2';
    const plan = (ipcNamespace: boolean) =>
      planRootfs({
        ...base,
        mounts: [...base.mounts, { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue' }],
        mountLabel: label,
        ipcNamespace,
      });
    const steps = plan(true);
    const data = (type: string) =>
      (steps.find((s) => s.op === 'mount' && s.fstype === type) as { data?: string } | undefined)?.data;
    // the quotes keep the category list's comma inside one option
    expect(data('tmpfs')).toBe(`mode=755,size=65536k,context="${label}"`);
    // an error names the field: the kernel's EINVAL for a context its policy does not know
    expect(steps.find((s) => s.op === 'mount' && s.fstype === 'tmpfs')?.describe).toMatch(
      /\(linux\.mountLabel\)$/,
    );
    // mqueue's superblock is the IPC namespace's (a real SELinux kernel refuses context= with EINVAL):
    // its root directory is labelled instead, by fd, right after the mount
    expect(data('mqueue')).toBeUndefined();
    const mq = steps.findIndex((s) => s.op === 'mount' && s.fstype === 'mqueue');
    expect(steps[mq + 1]).toMatchObject({ op: 'lsm', attr: '/dev/mqueue', value: label, inRoot: true });
    // the host's IPC namespace (or another container's): its mqueue keeps its label
    expect(plan(false).some((s) => s.op === 'lsm')).toBe(false);
    expect(data('proc')).toBeUndefined();
    // a masked directory's tmpfs is labelled too (runc's maskPath); without a label, no extra data
    expect(steps.find((s) => s.op === 'mask')).toMatchObject({
      path: '/proc/kcore',
      data: `context="${label}"`,
    });
    expect(planRootfs(base).find((s) => s.op === 'mask')).not.toHaveProperty('data');
    const bind = steps.find((s) => s.op === 'mount' && s.target === '/data');
    expect((bind as { data?: string } | undefined)?.data).toBeUndefined();
  });

  it('a mount that names its own context keeps it; a label that could break out of the option is refused', () => {
    expect(withMountLabel('context="a:b:c:s0"', 'tmpfs', 'x:y:z:s0')).toBe('context="a:b:c:s0"');
    expect(() => withMountLabel(undefined, 'tmpfs', 'x:y:z:s0",size=1')).toThrow(/^linux\.mountLabel: /);
  });

  it('binds a file source onto a created file, read-only from the start (flags on the bind itself)', () => {
    const steps = planRootfs(base);
    const i = steps.findIndex((s) => s.op === 'mkfile');
    expect(steps[i]).toMatchObject({ path: '/data', inRoot: true });
    expect(steps[i + 1]).toMatchObject({
      op: 'mount',
      source: join(bundle, 'file.txt'),
      target: '/data',
      inRoot: true,
      flags: MS.BIND | MS.REC | MS.RDONLY,
    });
    expect(steps.some((s) => s.op === 'mount' && s.flags & MS.REMOUNT && s.target === '/data')).toBe(false);
  });

  it("a bind source inside the rootfs is the container's path, resolved in the root when mounted", () => {
    const steps = planRootfs({
      ...base,
      mounts: [
        { destination: '/a', type: 'bind', source: join(rootfs, 'made/later'), options: ['rbind'] },
        { destination: `${rootfs}/b`, type: 'bind', source: 'rootfs', options: ['bind', 'ro'] },
      ],
    });
    const binds = steps.filter((x) => x.op === 'mount' && x.sourceInRoot);
    expect(binds).toEqual([
      expect.objectContaining({ source: '/made/later', target: '/a', flags: MS.BIND | MS.REC, inRoot: true }),
      // a destination naming the rootfs's host path is taken inside it (runc)
      expect.objectContaining({ source: '/', target: '/b', flags: MS.BIND | MS.RDONLY, inRoot: true }),
    ]);
    // no mkdir or mkfile is planned for them: the launcher makes the target like the source
    expect(
      steps.some((x) => (x.op === 'mkdir' || x.op === 'mkfile') && (x.path === '/a' || x.path === '/b')),
    ).toBe(false);
  });

  it('refuses an idmapped bind it has no prepared copy for, never binding it plainly', () => {
    const mount = (extra: object) => () =>
      planRootfs({ ...base, mounts: [{ destination: '/i', type: 'bind', source: 'file.txt', ...extra }] });
    expect(mount({ options: ['bind', 'idmap'] })).toThrow(
      /mounts\[0\]: an idmapped mount is prepared before the clone/,
    );
    expect(mount({ options: ['bind'], uidMappings: [{ containerID: 0, hostID: 1, size: 1 }] })).toThrow(
      /an idmapped mount is prepared before the clone/,
    );
    const prepared = planRootfs({
      ...base,
      mounts: [{ destination: '/i', type: 'bind', source: 'file.txt', options: ['bind', 'idmap'] }],
      preparedBinds: new Map([[0, 7]]),
    });
    expect(prepared.find((x) => x.op === 'bindTree')).toMatchObject({ tree: 7, target: '/i', inRoot: true });
  });

  it('turns tmpcopyup into a flag of the tmpfs mount, and refuses it elsewhere', () => {
    const steps = planRootfs({
      ...base,
      mounts: [{ destination: '/etc', type: 'tmpfs', source: 'tmpfs', options: ['tmpcopyup', 'mode=755'] }],
    });
    expect(steps.find((s) => s.op === 'mount' && s.fstype === 'tmpfs')).toMatchObject({
      target: '/etc',
      tmpcopyup: true,
      data: 'mode=755',
    });
    expect(() =>
      planRootfs({
        ...base,
        mounts: [{ destination: '/x', type: 'proc', source: 'proc', options: ['tmpcopyup'] }],
      }),
    ).toThrow(/tmpcopyup needs a tmpfs/);
  });

  it('creates the standard devices and links on a tmpfs /dev', () => {
    const steps = planRootfs(base);
    expect(steps.filter((s) => s.op === 'mknod').map((s) => (s as { path: string }).path)).toEqual([
      '/dev/null',
      '/dev/zero',
      '/dev/full',
      '/dev/random',
      '/dev/urandom',
      '/dev/tty',
    ]);
    expect(steps).toContainEqual({ op: 'symlink', target: 'pts/ptmx', path: '/dev/ptmx', inRoot: true });
  });

  it('names the mount entry that is wrong, and takes a relative destination from /', () => {
    // a relative destination is relative to / (the spec's rule)
    expect(planRootfs({ ...base, mounts: [{ destination: 'rel/x', type: 'tmpfs' }] })).toContainEqual(
      expect.objectContaining({ op: 'mount', target: '/rel/x', fstype: 'tmpfs', inRoot: true }),
    );
    expect(() => planRootfs({ ...base, mounts: [{ destination: '/x' }] })).toThrow(
      'mounts[0].type: must be set for a non-bind mount',
    );
    expect(() =>
      planRootfs({ ...base, mounts: [{ destination: '/x', type: 'bind', source: 'missing' }] }),
    ).toThrow(/mounts\[0\]\.source: .*missing does not exist/);
    expect(() => planRootfs({ ...base, rootfsPropagation: 'sideways' })).toThrow(/linux.rootfsPropagation/);
  });
});
