import { describe, expect, it } from 'vitest';
import { expandSlice, normalizeCgroupsPath, resolveCgroupsPath } from './path.js';

describe('cgroupsPath', () => {
  it('normalises absolute and relative paths', () => {
    expect(normalizeCgroupsPath('/a//b/./c/')).toMatchObject({ path: '/a/b/c', relative: false });
    expect(normalizeCgroupsPath('a/b')).toMatchObject({ path: 'a/b', relative: true });
  });

  it('refuses .., empty paths and the root', () => {
    expect(() => normalizeCgroupsPath('/a/../../etc')).toThrow(/must not contain '\.\.'/);
    expect(() => normalizeCgroupsPath('a/..')).toThrow(/'\.\.'/);
    expect(() => normalizeCgroupsPath('')).toThrow('cgroupsPath is empty');
    expect(() => normalizeCgroupsPath('/')).toThrow(/root cgroup/);
  });

  it('expands systemd slices like systemd', () => {
    expect(expandSlice('-.slice')).toBe('/');
    expect(expandSlice('system.slice')).toBe('/system.slice');
    expect(expandSlice('test-a-b.slice')).toBe('/test.slice/test-a.slice/test-a-b.slice');
    expect(() => expandSlice('a--b.slice')).toThrow(/empty component/);
    expect(() => expandSlice('nope')).toThrow(/must end with \.slice/);
  });

  it('says clearly that systemd is not running', () => {
    expect(() =>
      resolveCgroupsPath('system.slice:berth:abc', { driver: 'systemd', systemdRunning: false }),
    ).toThrow(/systemd is not running/);
  });

  it('maps slice:prefix:name onto cgroupfs only when asked', () => {
    const r = resolveCgroupsPath('machine-x.slice:berth:abc', {
      driver: 'systemd',
      systemdRunning: false,
      fallbackToCgroupfs: true,
    });
    expect(r.path).toBe('/machine.slice/machine-x.slice/berth-abc.scope');
    expect(r.systemd).toEqual({ slice: 'machine-x.slice', unit: 'berth-abc.scope' });
    expect(
      resolveCgroupsPath(':berth:abc', { driver: 'systemd', systemdRunning: false, fallbackToCgroupfs: true })
        .path,
    ).toBe('/system.slice/berth-abc.scope');
    expect(
      resolveCgroupsPath('user.slice::pod.slice', {
        driver: 'systemd',
        systemdRunning: false,
        fallbackToCgroupfs: true,
      }).path,
    ).toBe('/user.slice/pod.slice');
  });

  it('rejects a non-systemd path with the systemd driver', () => {
    expect(() => resolveCgroupsPath('/berth/abc', { driver: 'systemd', fallbackToCgroupfs: true })).toThrow(
      /must have the form "slice:prefix:name"/,
    );
  });
});
