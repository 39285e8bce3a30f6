import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec, type Spec } from '@berth/spec';
import { CLONE_NEWNET, CLONE_NEWUSER, MS, type PlanStep } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { planContainer } from './plan.js';
import {
  AUTO_RANGE_BASE,
  adaptRootfsForUserns,
  allocateAutoRange,
  planIdmappedMounts,
  planUserns,
  resolveUsernsRequest,
  usernsConfig,
} from './userns.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-userns-plan-'));
const bundle = join(dir, 'bundle');
mkdirSync(join(bundle, 'rootfs'), { recursive: true });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const map = (hostID: number) => [{ containerID: 0, hostID, size: 65536 }];

function spec(edit: (s: Spec) => void = () => {}): Spec {
  const s = defaultSpec();
  s.process!.terminal = false;
  s.linux!.namespaces!.push({ type: 'user' });
  s.linux!.uidMappings = map(100000);
  s.linux!.gidMappings = map(100000);
  edit(s);
  return s;
}

const rootfs = join(bundle, 'rootfs');

describe('usernsConfig', () => {
  it('is undefined without a user namespace, and names the JSON path of what is wrong', () => {
    const none = defaultSpec();
    expect(usernsConfig(none)).toBeUndefined();
    none.linux!.uidMappings = map(1);
    expect(() => usernsConfig(none)).toThrow(
      'linux.uidMappings: requires a "user" entry in linux.namespaces',
    );
    expect(() => usernsConfig(spec((s) => delete s.linux!.gidMappings))).toThrow(
      /linux.gidMappings: a new user namespace \(linux.namespaces\[\d\]\) needs gid mappings/,
    );
    expect(() => usernsConfig(spec((s) => (s.linux!.uidMappings = map(0))))).toThrow(
      'linux.uidMappings: maps container root to host root',
    );
    const asked = spec((s) => {
      s.linux!.uidMappings = map(0);
      s.annotations = { 'org.berth.userns.host-root': 'true' };
    });
    expect(usernsConfig(asked)?.create).toBe(true);
  });
});

describe('planUserns (as root)', () => {
  it('an image snapshot: idmapped layers and the overlay before the clone, in a private mount namespace', () => {
    const overlay = { lower: ['/store/l2', '/store/l1'], upper: '/store/c/upper', work: '/store/c/work' };
    const p = planUserns(spec(), { rootfs, bundle, cloneFlags: CLONE_NEWUSER, overlay })!;
    expect(p.beforeClone.map((s) => s.op)).toEqual([
      'unshare',
      'mount',
      'idmapUserns',
      'idmapBind',
      'idmapBind',
      'mount',
      'chdir',
      'idmap',
    ]);
    expect(p.beforeClone[3]).toMatchObject({ source: '/store/l2', target: '/store/l2', slot: 0 });
    expect(p.beforeClone[5]).toMatchObject({ fstype: 'overlay', target: rootfs });
    expect(p.beforeClone.at(-1)).toEqual({
      op: 'idmap',
      uidMap: '0 100000 65536\n',
      gidMap: '0 100000 65536\n',
      setgroups: 0,
      writer: { mode: 0 },
    });
    expect(p.afterClone).toEqual([{ op: 'usernsRoot', setgroups: 0 }, { op: 'rootRebind' }]);
    expect(p.overlayMounted).toBe(true);
  });

  it('a bundle: its rootfs bound onto itself (or idmapped, when annotated) before the clone', () => {
    const plain = planUserns(spec(), { rootfs, bundle, cloneFlags: CLONE_NEWUSER })!;
    expect(plain.beforeClone.find((s) => s.op === 'mount' && s.source === rootfs)).toMatchObject({
      flags: MS.BIND | MS.REC,
    });
    const idmapped = planUserns(
      spec((s) => (s.annotations = { 'org.berth.rootfs.idmap': 'true' })),
      { rootfs, bundle, cloneFlags: CLONE_NEWUSER },
    )!;
    expect(idmapped.beforeClone.find((s) => s.op === 'idmapBind')).toMatchObject({
      source: rootfs,
      target: rootfs,
    });
    expect(() =>
      planUserns(
        spec((s) => (s.annotations = { 'org.berth.rootfs.idmap': 'yes' })),
        {
          rootfs,
          bundle,
          cloneFlags: 0,
        },
      ),
    ).toThrow('annotations["org.berth.rootfs.idmap"]: "yes" is not "true" or "false"');
  });

  it('idmapped bind mounts: a detached copy each, prepared before the clone, one slot per mapping', () => {
    const idm = planIdmappedMounts(
      spec((s) => {
        s.mounts!.push(
          { destination: '/a', type: 'bind', source: '/srv/a', options: ['rbind', 'idmap'] },
          {
            destination: '/b',
            type: 'bind',
            source: '/srv/b',
            options: ['rbind', 'ridmap', 'ro'],
            uidMappings: [{ containerID: 0, hostID: 5000, size: 10 }],
            gidMappings: [{ containerID: 0, hostID: 5000, size: 10 }],
          },
          // mappings without an option: "idmap" (runc 1.2); the same source again is fine
          {
            destination: '/c',
            type: 'bind',
            source: '/srv/b',
            options: ['bind'],
            uidMappings: [{ containerID: 0, hostID: 5000, size: 10 }],
            gidMappings: [{ containerID: 0, hostID: 5000, size: 10 }],
          },
        );
      }),
      bundle,
      usernsConfig(spec(() => {})),
    );
    const n = defaultSpec().mounts!.length;
    expect(idm.trees).toEqual(
      new Map([
        [n, 0],
        [n + 1, 1],
        [n + 2, 2],
      ]),
    );
    expect(idm.steps.filter((s) => s.op === 'idmapTree')).toEqual([
      expect.objectContaining({ source: '/srv/a', slot: 1, tree: 0, recursive: true, idmapRecursive: false }),
      expect.objectContaining({
        source: '/srv/b',
        slot: 2,
        tree: 1,
        recursive: true,
        idmapRecursive: true,
        flags: MS.RDONLY,
      }),
      expect.objectContaining({
        source: '/srv/b',
        slot: 2,
        tree: 2,
        recursive: false,
        idmapRecursive: false,
      }),
    ]);
    // the container's maps for the first, the mount's own for the other two: two namespaces
    expect(idm.steps.filter((s) => s.op === 'idmapUserns')).toEqual([
      expect.objectContaining({ slot: 1, uidMap: '0 100000 65536\n' }),
      expect.objectContaining({ slot: 2, uidMap: '0 5000 10\n' }),
    ]);
  });

  it('stages plain host bind sources in the launcher namespace, where the stage is searchable by all', () => {
    const src = join(dir, 'stage-src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'file'), 'x');
    const stageDir = join(dir, 'state', 'binds');
    mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o711 });
    const s = spec((x) => {
      x.mounts!.push(
        { destination: '/d', type: 'bind', source: src, options: ['rbind'] },
        { destination: '/f', type: 'bind', source: join(src, 'file'), options: ['bind', 'ro'] },
        { destination: '/i', type: 'bind', source: src, options: ['bind', 'idmap'] }, // prepared elsewhere
        { destination: '/r', type: 'bind', source: join(rootfs, 'etc'), options: ['bind'] }, // in the rootfs
      );
    });
    const n = defaultSpec().mounts!.length;
    chmodSync(dir, 0o711);
    try {
      const p = planUserns(s, { rootfs, bundle, cloneFlags: CLONE_NEWUSER, stageDir })!;
      expect(p.stagedSources).toEqual(
        new Map([
          [n, join(stageDir, String(n))],
          [n + 1, join(stageDir, String(n + 1))],
        ]),
      );
      expect(p.beforeClone.filter((x) => x.op === 'idmapBind' && x.slot === -1)).toEqual([
        expect.objectContaining({ source: src, target: join(stageDir, String(n)), recursive: true }),
        expect.objectContaining({
          source: join(src, 'file'),
          target: join(stageDir, String(n + 1)),
          recursive: false,
        }),
      ]);
      expect(p.beforeClone.find((x) => x.op === 'mkfile')).toMatchObject({
        path: join(stageDir, String(n + 1)),
      });
      // a stage others cannot search would be out of the mapped root's reach: nothing staged
      chmodSync(dir, 0o700);
      expect(planUserns(s, { rootfs, bundle, cloneFlags: CLONE_NEWUSER, stageDir })!.stagedSources.size).toBe(
        0,
      );
    } finally {
      chmodSync(dir, 0o700);
    }
  });

  it('idmapped mounts without a user namespace take their own maps', () => {
    const s = defaultSpec();
    s.mounts!.push({
      destination: '/t',
      type: 'bind',
      source: '/srv',
      options: ['bind'],
      uidMappings: map(7),
      gidMappings: map(7),
    });
    const idm = planIdmappedMounts(s, bundle, undefined);
    expect(idm.trees.size).toBe(1);
    expect(idm.steps.map((x) => x.op)).toEqual(['idmapUserns', 'idmapTree']);
  });

  it('refuses idmapped mounts it cannot honour', () => {
    const plan =
      (edit: (s: Spec) => void, base = spec(() => {})) =>
      () => {
        edit(base);
        return planIdmappedMounts(base, bundle, usernsConfig(base));
      };
    expect(
      plan((s) => s.mounts!.push({ destination: '/t', type: 'tmpfs', source: 'tmpfs', options: ['idmap'] })),
    ).toThrow(/mounts\[\d+\]: idmapped mounts are only supported for bind mounts/);
    expect(
      plan((s) =>
        s.mounts!.push({
          destination: '/t',
          type: 'bind',
          source: '/srv',
          options: ['bind'],
          uidMappings: map(7),
        }),
      ),
    ).toThrow(/mounts\[\d+\]: an idmapped mount needs both uidMappings and gidMappings/);
    expect(
      plan(
        (s) =>
          s.mounts!.push({ destination: '/t', type: 'bind', source: '/srv', options: ['bind', 'idmap'] }),
        defaultSpec(),
      ),
    ).toThrow(/"idmap" without uidMappings and gidMappings needs a user namespace/);
  });

  it('joining a user namespace by path: root inside, nothing written', () => {
    const p = planUserns(
      spec((s) => {
        s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
          n.type === 'user' ? { type: 'user', path: '/run/ns/u' } : n,
        );
        delete s.linux!.uidMappings;
        delete s.linux!.gidMappings;
      }),
      { rootfs, bundle, cloneFlags: 0 },
    )!;
    expect(p).toEqual({
      beforeClone: [],
      afterClone: [{ op: 'usernsRoot', setgroups: 0 }],
      overlayMounted: false,
      rootByCwd: false,
      config: expect.objectContaining({ create: false, path: '/run/ns/u' }),
      stagedSources: new Map(),
    });
  });
});

describe('adaptRootfsForUserns', () => {
  it('binds the host device nodes, binds /sys without a network namespace, leaves the rest', () => {
    const steps: PlanStep[] = [
      { op: 'mount', source: rootfs, target: rootfs, flags: MS.BIND | MS.REC },
      { op: 'root', path: rootfs },
      {
        op: 'mount',
        source: 'sysfs',
        target: '/sys',
        fstype: 'sysfs',
        flags: MS.RDONLY | MS.NOSUID,
        inRoot: true,
      },
      { op: 'mknod', path: '/dev/null', mode: 0o020666, major: 1, minor: 3, uid: 0, gid: 0, inRoot: true },
      { op: 'mknod', path: '/dev/fifo', mode: 0o010666, major: 0, minor: 0, uid: 0, gid: 0, inRoot: true },
    ];
    const out = adaptRootfsForUserns(steps, 0, { rootfs });
    expect(out.map((s) => s.op)).toEqual(['mount', 'mkfile', 'mount', 'mknod']);
    expect(out[0]).toMatchObject({
      source: '/sys',
      target: '/sys',
      flags: MS.BIND | MS.REC | MS.RDONLY | MS.NOSUID,
    });
    expect(out[2]).toMatchObject({ source: '/dev/null', target: '/dev/null', flags: MS.BIND, inRoot: true });
    // its own network namespace: sysfs is mounted as asked
    expect(adaptRootfsForUserns(steps, CLONE_NEWNET, undefined)[2]).toMatchObject({ fstype: 'sysfs' });
    // a device the host does not have at that path is an error, never a bind of some other host file
    expect(() =>
      adaptRootfsForUserns(
        [
          {
            op: 'mknod',
            path: '/etc/passwd',
            mode: 0o020666,
            major: 1,
            minor: 3,
            uid: 0,
            gid: 0,
            inRoot: true,
          },
        ],
        0,
        undefined,
      ),
    ).toThrow('linux.devices: /etc/passwd (1:3) cannot be made in a user namespace');
  });
});

describe('planContainer with a user namespace', () => {
  it('writes the maps for the clone that makes the user namespace, and never mounts the overlay twice', () => {
    const overlay = { lower: ['/store/l1'], upper: '/store/c/upper', work: '/store/c/work' };
    const { steps } = planContainer(spec(), { bundle, foreground: true, overlay });
    const ops = steps.map((s) => s.op);
    const clone = ops.indexOf('clone');
    expect(ops[clone - 1]).toBe('idmap');
    expect((steps[clone] as { flags: number }).flags & CLONE_NEWUSER).toBe(CLONE_NEWUSER);
    expect(ops.slice(clone + 1, clone + 4)).toEqual(['usernsRoot', 'rootRebind', 'sync']);
    expect(steps.filter((s) => s.op === 'mount' && s.fstype === 'overlay')).toHaveLength(1);
    expect(ops.indexOf('mount')).toBeLessThan(clone); // the overlay: before the clone
    expect(steps.some((s) => s.op === 'mknod' && s.inRoot)).toBe(false);
    expect(steps.filter((s) => s.op === 'root')).toEqual([]);
  });
});

describe('automatic ranges', () => {
  it('picks free ranges outside /etc/subuid and /etc/subgid, recorded in the container directory', async () => {
    const store = join(dir, 'store');
    const etc = join(dir, 'etc');
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'subuid'), `alice:${AUTO_RANGE_BASE}:65536\n`);
    writeFileSync(join(etc, 'subgid'), '');
    for (const id of ['a', 'b']) mkdirSync(join(store, 'containers', id), { recursive: true });
    const a = await allocateAutoRange(store, 'a', 65536, etc);
    const b = await allocateAutoRange(store, 'b', 65536, etc);
    expect(a).toBe(AUTO_RANGE_BASE + 65536); // alice's range is skipped
    expect(b).toBe(AUTO_RANGE_BASE + 2 * 65536);
    expect(JSON.parse(readFileSync(join(store, 'containers', 'a', 'userns.json'), 'utf8'))).toEqual({
      start: a,
      size: 65536,
    });
    // a's directory gone (its container deleted): its range is free again
    rmSync(join(store, 'containers', 'a'), { recursive: true });
    mkdirSync(join(store, 'containers', 'c'));
    expect(await allocateAutoRange(store, 'c', 65536, etc)).toBe(a);
    // a "containers" entry in /etc/subuid is the pool (as podman)
    writeFileSync(join(etc, 'subuid'), 'containers:2000000:131072\n');
    mkdirSync(join(store, 'containers', 'd'));
    expect(await allocateAutoRange(store, 'd', 65536, etc)).toBe(2000000);
  });

  it('maps --uidmap as given (gids as uids when --gidmap is absent)', async () => {
    const m = await resolveUsernsRequest(
      { mode: 'maps', uidMappings: map(300000), gidMappings: [] },
      join(dir, 'store'),
      'x',
    );
    expect(m).toEqual({ uidMappings: map(300000), gidMappings: map(300000) });
    expect(await resolveUsernsRequest({ mode: 'host' }, join(dir, 'store'), 'x')).toBeUndefined();
  });
});
