import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec } from '@berth/spec';
import { inUserNamespace } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import {
  askedLimit,
  createRootlessCgroup,
  defaultStateRoot,
  ensurePrivateDir,
  findIdmapTools,
  parseSubIds,
  rootlessCacheDir,
  rootlessCgroup,
  rootlessIds,
  rootlessMappings,
  rootlessSpecProblem,
  rootlessStateRoot,
  rootlessStoreRoot,
  toRootlessSpec,
} from './rootless.js';

const tmp = mkdtempSync(join(tmpdir(), 'berth-rootless-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('rootless directories', () => {
  it('puts state in $XDG_RUNTIME_DIR/berth, images and caches under the XDG homes', () => {
    expect(rootlessStateRoot({ XDG_RUNTIME_DIR: '/run/user/1234' }, 1234)).toBe('/run/user/1234/berth');
    expect(rootlessStoreRoot({ HOME: '/home/u' })).toBe('/home/u/.local/share/berth');
    expect(rootlessStoreRoot({ HOME: '/home/u', XDG_DATA_HOME: '/data' })).toBe('/data/berth');
    // a relative XDG value is ignored, as the XDG spec says
    expect(rootlessStoreRoot({ HOME: '/home/u', XDG_DATA_HOME: 'rel' })).toBe('/home/u/.local/share/berth');
    expect(rootlessCacheDir({ HOME: '/home/u' })).toBe('/home/u/.cache/berth');
    expect(rootlessCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: '/c' })).toBe('/c/berth');
  });

  it("as the host's root keeps state in /run/berth whatever XDG_RUNTIME_DIR says (sudo -E); as root in a user namespace, there", () => {
    if (process.geteuid?.() !== 0) return;
    const env = { XDG_RUNTIME_DIR: '/run/user/1234', USER: 'someone' };
    // on the host (this test's usual place) root's state stays where runc's does
    expect(defaultStateRoot(env)).toBe(inUserNamespace() ? '/run/user/1234/berth' : '/run/berth');
    // $USER root (a root login) and $BERTH_ROOT keep theirs
    expect(defaultStateRoot({ ...env, USER: 'root' })).toBe('/run/berth');
    expect(defaultStateRoot({ ...env, BERTH_ROOT: '/x' })).toBe('/x');
    expect(defaultStateRoot({ USER: 'someone' })).toBe('/run/berth');
  });

  it('without XDG_RUNTIME_DIR falls back to /run/user/UID only when it is the user’s, else says what to set', () => {
    // a uid that owns no /run/user directory here
    expect(() => rootlessStateRoot({}, 4_000_123)).toThrow(/set XDG_RUNTIME_DIR.*--root DIR/);
    expect(() => rootlessStateRoot({}, 4_000_123)).toThrow('/run/user/4000123');
  });

  it('makes directories 0700 and refuses one that is not the user’s, a symlink, or writable by others', () => {
    const uid = process.geteuid!();
    const d = join(tmp, 'a', 'b', 'berth');
    ensurePrivateDir(d, uid);
    expect(statSync(d).mode & 0o777).toBe(0o700);
    expect(statSync(join(tmp, 'a')).mode & 0o777).toBe(0o700);
    // someone else's: refused, naming the path
    expect(() => ensurePrivateDir(d, uid + 1)).toThrow(`refusing to use ${d}: it belongs to uid ${uid}`);
    const loose = join(tmp, 'loose');
    mkdirSync(loose);
    chmodSync(loose, 0o777);
    expect(() => ensurePrivateDir(loose, uid)).toThrow(/group or others may write to it \(mode 777\)/);
    const link = join(tmp, 'link');
    symlinkSync(d, link);
    expect(() => ensurePrivateDir(link, uid)).toThrow(/not a directory \(a symlink\?\)/);
  });
});

describe('subordinate ids', () => {
  const text = [
    '# comment',
    'alice:100000:65536',
    '1001:300000:1000', // by uid
    'bob:200000:65536',
    'alice:bad:10', // malformed: skipped
    'alice:500000:0', // empty: skipped
    'alice:4294967295:2', // past the last id: skipped
    'alice:700000:10',
    '',
  ].join('\n');

  it('matches lines by name and by uid, in file order, skipping malformed ones', () => {
    expect(parseSubIds(text, { name: 'alice', uid: 1001 })).toEqual([
      { start: 100000, count: 65536 },
      { start: 300000, count: 1000 },
      { start: 700000, count: 10 },
    ]);
    expect(parseSubIds(text, { name: 'bob', uid: 1002 })).toEqual([{ start: 200000, count: 65536 }]);
    expect(parseSubIds(text, { name: 'carol', uid: 1003 })).toEqual([]);
  });

  it('maps container 0 to the user and 1.. to the ranges in turn', () => {
    expect(
      rootlessMappings(1001, [
        { start: 100000, count: 65536 },
        { start: 300000, count: 1000 },
      ]),
    ).toEqual([
      { containerID: 0, hostID: 1001, size: 1 },
      { containerID: 1, hostID: 100000, size: 65536 },
      { containerID: 65537, hostID: 300000, size: 1000 },
    ]);
    // a range holding the user's own id would map it twice: left out
    expect(rootlessMappings(1001, [{ start: 1000, count: 10 }])).toEqual([
      { containerID: 0, hostID: 1001, size: 1 },
    ]);
    // never more than the kernel's 340 lines
    const many = Array.from({ length: 400 }, (_, i) => ({ start: 100000 + i * 10, count: 10 }));
    expect(rootlessMappings(1001, many)).toHaveLength(340);
  });

  it('reads both files; without ranges in both only the user’s own ids are mapped', () => {
    const subuid = join(tmp, 'subuid');
    const subgid = join(tmp, 'subgid');
    writeFileSync(subuid, 'alice:100000:65536\n');
    writeFileSync(subgid, 'alice:100000:65536\n');
    const tools = findIdmapTools();
    const both = rootlessIds({ user: 'alice', uid: 1001, gid: 1001, subuidFile: subuid, subgidFile: subgid });
    // the ranges are used only where newuidmap and newgidmap exist (Debian's uidmap: scripts/setup.sh)
    expect(tools).toBeDefined();
    expect(both.subordinate).toBe(true);
    expect(both.gidMappings).toEqual([
      { containerID: 0, hostID: 1001, size: 1 },
      { containerID: 1, hostID: 100000, size: 65536 },
    ]);
    writeFileSync(subgid, 'bob:100000:65536\n');
    const one = rootlessIds({ user: 'alice', uid: 1001, gid: 1001, subuidFile: subuid, subgidFile: subgid });
    expect(one).toEqual({
      uidMappings: [{ containerID: 0, hostID: 1001, size: 1 }],
      gidMappings: [{ containerID: 0, hostID: 1001, size: 1 }],
      subordinate: false,
    });
    // no newuidmap on the search path: the single mapping too
    writeFileSync(subgid, 'alice:100000:65536\n');
    const noTools = rootlessIds({
      user: 'alice',
      uid: 1001,
      gid: 1001,
      subuidFile: subuid,
      subgidFile: subgid,
      path: join(tmp, 'nowhere'),
    });
    expect(noTools.subordinate).toBe(false);
  });
});

describe('rootless specs', () => {
  const single = {
    uidMappings: [{ containerID: 0, hostID: 1001, size: 1 }],
    gidMappings: [{ containerID: 0, hostID: 1001, size: 1 }],
    subordinate: false,
  };
  const ranges = {
    uidMappings: [...single.uidMappings, { containerID: 1, hostID: 100000, size: 65536 }],
    gidMappings: [...single.gidMappings, { containerID: 1, hostID: 100000, size: 65536 }],
    subordinate: true,
  };

  it('adds a user namespace first, the maps, and drops uid=/gid= options naming unmapped ids', () => {
    const spec = toRootlessSpec(defaultSpec(), single);
    expect(spec.linux?.namespaces?.[0]).toEqual({ type: 'user' });
    expect(spec.linux?.namespaces?.filter((n) => n.type === 'user')).toHaveLength(1);
    expect(spec.linux?.uidMappings).toEqual(single.uidMappings);
    const devpts = spec.mounts?.find((m) => m.destination === '/dev/pts');
    expect(devpts?.options).not.toContain('gid=5');
    // with a network namespace of its own, sysfs stays
    expect(spec.mounts?.find((m) => m.destination === '/sys')?.type).toBe('sysfs');
    // gid 5 is mapped with subordinate ranges: the option stays
    const withRanges = toRootlessSpec(defaultSpec(), ranges);
    expect(withRanges.mounts?.find((m) => m.destination === '/dev/pts')?.options).toContain('gid=5');
  });

  it('binds /sys from the host when the container shares the host network', () => {
    const base = defaultSpec();
    base.linux!.namespaces = base.linux!.namespaces!.filter((n) => n.type !== 'network');
    const sys = toRootlessSpec(base, single).mounts?.find((m) => m.destination === '/sys');
    expect(sys).toEqual({
      destination: '/sys',
      type: 'none',
      source: '/sys',
      options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
    });
  });

  it('refuses, naming the JSON path, what only root may do', () => {
    expect(rootlessSpecProblem(defaultSpec())).toMatch(
      /^linux\.namespaces: berth without root needs a user namespace/,
    );
    const noMaps = defaultSpec();
    noMaps.linux!.namespaces!.push({ type: 'user' });
    expect(rootlessSpecProblem(noMaps)).toMatch(/^linux\.uidMappings: /);
    const ok = toRootlessSpec(defaultSpec(), single);
    // runc's default "deny all" holds in a user namespace (no mknod): accepted
    expect(ok.linux?.resources?.devices).toEqual([{ allow: false, access: 'rwm' }]);
    expect(rootlessSpecProblem(ok)).toBeUndefined();
    ok.linux!.resources!.devices!.push({ allow: false, type: 'c', major: 1, minor: 3, access: 'rwm' });
    expect(rootlessSpecProblem(ok)).toMatch(
      /^linux\.resources\.devices\[1\]: denying a particular device needs root/,
    );
    expect(rootlessSpecProblem(defaultSpec({ rootless: true }))).toBeUndefined();
    const ext4 = toRootlessSpec(defaultSpec(), single);
    ext4.mounts!.push({ destination: '/data', type: 'ext4', source: '/dev/sda1' });
    expect(rootlessSpecProblem(ext4)).toMatch(
      /^mounts\[\d+\]\.type: "ext4" cannot be mounted by berth without root \(a user namespace may mount only proc, sysfs, tmpfs/,
    );
    ext4.mounts!.at(-1)!.options = ['rbind']; // a bind of a host path the user can reach: fine
    expect(rootlessSpecProblem(ext4)).toBeUndefined();
  });

  it('names the first cgroup limit asked for', () => {
    expect(askedLimit(defaultSpec())).toBeUndefined(); // device rules only
    const spec = defaultSpec();
    spec.linux!.resources = { ...spec.linux!.resources, pids: { limit: 10 } };
    expect(askedLimit(spec)).toBe('linux.resources.pids');
  });
});

describe('rootless cgroups', () => {
  const v2 = '30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n';
  it('without a cgroup2 hierarchy or a delegated subtree: none, and why', () => {
    expect(rootlessCgroup({ mountinfo: '', procCgroup: '0::/\n' })).toEqual({
      kind: 'none',
      reason: 'this host has no cgroup v2 hierarchy',
    });
    const r = rootlessCgroup({ mountinfo: v2, procCgroup: '0::/user.slice/x.scope\n', uid: 4_000_123 });
    expect(r.kind).toBe('none');
    expect(r.kind === 'none' && r.reason).toMatch(/no cgroup v2 subtree is delegated to you/);
  });

  it('a subtree the user owns is used: the parent of the current cgroup first', () => {
    // a stand-in tree: directories with a cgroup.procs file, owned by this process's user
    const mount = join(tmp, 'cg');
    mkdirSync(join(mount, 'deleg', 'shell'), { recursive: true });
    writeFileSync(join(mount, 'deleg', 'cgroup.procs'), '');
    writeFileSync(join(mount, 'deleg', 'shell', 'cgroup.procs'), '');
    const mi = `30 25 0:26 / ${mount} rw - cgroup2 cgroup2 rw\n`;
    expect(rootlessCgroup({ mountinfo: mi, procCgroup: '0::/deleg/shell\n' })).toEqual({
      kind: 'delegated',
      mount,
      parent: '/deleg',
    });
  });

  it('limits without a cgroup are an error naming the field and the reason; none: a warning', async () => {
    const spec = defaultSpec({ rootless: true });
    const warnings: string[] = [];
    const none = { kind: 'none', reason: 'this host has no cgroup v2 hierarchy' } as const;
    await expect(createRootlessCgroup(spec, 'x', (w) => warnings.push(w), none)).resolves.toEqual({});
    expect(warnings).toEqual([
      'running without a cgroup (berth without root: this host has no cgroup v2 hierarchy); pause, resume, update and stats need one',
    ]);
    spec.linux!.resources = { memory: { limit: 64 << 20 } };
    await expect(createRootlessCgroup(spec, 'x', () => {}, none)).rejects.toThrow(
      'linux.resources.memory: berth without root can only apply cgroup limits in a cgroup v2 subtree delegated to the user, and this host has no cgroup v2 hierarchy',
    );
  });
});
