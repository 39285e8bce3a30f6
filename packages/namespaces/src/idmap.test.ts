import { describe, expect, it } from 'vitest';
import {
  mapsRootToRoot,
  parseIdMapping,
  planIdmap,
  toContainerId,
  toHostId,
  validateIdMappings,
} from './idmap.js';

describe('validateIdMappings', () => {
  const ok = [
    { containerID: 0, hostID: 100000, size: 65536 },
    { containerID: 65536, hostID: 5000, size: 1 },
  ];
  it('accepts disjoint ranges and returns them', () => {
    expect(validateIdMappings(ok, 'linux.uidMappings')).toEqual(ok);
    expect(validateIdMappings([], 'linux.uidMappings')).toEqual([]);
  });
  it('takes the full range (0 0 4294967295, as the kernel and runc do), and no more', () => {
    const full = [{ containerID: 0, hostID: 0, size: 4294967295 }];
    expect(validateIdMappings(full, 'linux.uidMappings')).toEqual(full);
    expect(() =>
      validateIdMappings([{ containerID: 1, hostID: 0, size: 4294967295 }], 'linux.uidMappings'),
    ).toThrow('linux.uidMappings[0]: container ids 1+4294967295 go past 4294967294');
    expect(() =>
      validateIdMappings([{ containerID: 0, hostID: 0, size: 4294967296 }], 'linux.uidMappings'),
    ).toThrow('linux.uidMappings[0].size: 4294967296 is not a count of ids');
  });
  it('names the JSON path of what is wrong', () => {
    expect(() => validateIdMappings({}, 'linux.uidMappings')).toThrow('linux.uidMappings: must be an array');
    expect(() => validateIdMappings([{ containerID: 0, hostID: -1, size: 1 }], 'linux.gidMappings')).toThrow(
      'linux.gidMappings[0].hostID: -1 is not an id',
    );
    expect(() => validateIdMappings([{ containerID: 0, hostID: 1, size: 0 }], 'linux.uidMappings')).toThrow(
      'linux.uidMappings[0].size: must be at least 1',
    );
    expect(() => validateIdMappings([{ containerID: 0, hostID: '1', size: 1 }], 'x')).toThrow(
      'x[0].hostID: "1"',
    );
    expect(() =>
      validateIdMappings([{ containerID: 0, hostID: 4294967290, size: 10 }], 'linux.uidMappings'),
    ).toThrow('linux.uidMappings[0]: host ids 4294967290+10 go past 4294967294');
  });
  it('refuses overlapping container ranges and overlapping host ranges', () => {
    expect(() =>
      validateIdMappings(
        [
          { containerID: 0, hostID: 100000, size: 10 },
          { containerID: 5, hostID: 200000, size: 10 },
        ],
        'linux.uidMappings',
      ),
    ).toThrow('linux.uidMappings[1]: container ids 5-14 overlap linux.uidMappings[0] (0-9)');
    expect(() =>
      validateIdMappings(
        [
          { containerID: 0, hostID: 100000, size: 10 },
          { containerID: 10, hostID: 100009, size: 1 },
        ],
        'linux.uidMappings',
      ),
    ).toThrow('linux.uidMappings[1]: host ids 100009-100009 overlap');
  });
  it('refuses more than 340 lines', () => {
    const many = Array.from({ length: 341 }, (_, i) => ({ containerID: i, hostID: 100000 + i, size: 1 }));
    expect(() => validateIdMappings(many, 'linux.uidMappings')).toThrow(
      '341 mappings, the kernel takes at most 340',
    );
    expect(validateIdMappings(many.slice(0, 340), 'linux.uidMappings')).toHaveLength(340);
  });
});

describe('id arithmetic', () => {
  const maps = [
    { containerID: 0, hostID: 100000, size: 1000 },
    { containerID: 1000, hostID: 5000, size: 1 },
  ];
  it('goes both ways', () => {
    expect(toHostId(maps, 999)).toBe(100999);
    expect(toContainerId(maps, 100999)).toBe(999);
    expect(toContainerId(maps, 5000)).toBe(1000);
    expect(toContainerId(maps, 0)).toBeUndefined();
  });
  it('knows when container root is host root', () => {
    expect(mapsRootToRoot(maps)).toBe(false);
    expect(mapsRootToRoot([{ containerID: 0, hostID: 0, size: 1 }])).toBe(true);
  });
});

describe('parseIdMapping (podman --uidmap syntax)', () => {
  it('parses CONTAINER:HOST:SIZE', () => {
    expect(parseIdMapping('0:100000:65536')).toEqual({ containerID: 0, hostID: 100000, size: 65536 });
  });
  it('says what is wrong and names the flag', () => {
    expect(() => parseIdMapping('0:100000', '--gidmap')).toThrow(
      '--gidmap "0:100000": expected CONTAINER:HOST:SIZE, three ids (e.g. 0:100000:65536)',
    );
    expect(() => parseIdMapping('a:b:c')).toThrow('--uidmap "a:b:c": expected CONTAINER:HOST:SIZE');
    expect(() => parseIdMapping('0:1:0')).toThrow('--uidmap 0:1:0: SIZE must be at least 1');
    expect(() => parseIdMapping('0:4294967295:1')).toThrow('is not an id');
  });
});

describe('planIdmap', () => {
  it('makes the idmap step (before the clone) and the usernsRoot step (after)', () => {
    const p = planIdmap({
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    });
    expect(p.beforeClone).toEqual({
      op: 'idmap',
      uidMap: '0 100000 65536\n',
      gidMap: '0 100000 65536\n',
      setgroups: 0,
      writer: { mode: 0 },
    });
    expect(p.afterClone).toEqual({ op: 'usernsRoot', setgroups: 0 });
    const r = planIdmap({
      uidMappings: [],
      gidMappings: [],
      setgroups: 1,
      writer: { mode: 1, newuidmap: '/usr/bin/newuidmap', newgidmap: '/usr/bin/newgidmap' },
    });
    expect(r.beforeClone).toMatchObject({ setgroups: 1, writer: { mode: 1 } });
  });
});
