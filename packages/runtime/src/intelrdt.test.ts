import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyIntelRdt, planIntelRdt, resctrlMount, schemataHolds } from './intelrdt.js';

describe('planIntelRdt: the rules of config-linux.md', () => {
  it('names the group after the container when closID is not set', () => {
    expect(planIntelRdt({ l3CacheSchema: 'L3:0=ff' }, 'c1')).toMatchObject({
      name: 'c1',
      mustExist: false,
      writes: ['L3:0=ff'],
      compare: [],
    });
  });

  it('writes l3CacheSchema and memBwSchema combined, memBwSchema replacing MB: lines of l3CacheSchema', () => {
    const p = planIntelRdt({ l3CacheSchema: 'L3:0=7f0;1=1f\nMB:0=90', memBwSchema: 'MB:0=20;1=70' }, 'c1');
    expect(p.writes).toEqual(['L3:0=7f0;1=1f\nMB:0=20;1=70']);
  });

  it('writes schemata last, after the combined value', () => {
    const p = planIntelRdt({ closID: 'g', l3CacheSchema: 'L3:0=f', schemata: ['L2:0=f', 'MB:0=50'] }, 'c1');
    expect(p.writes).toEqual(['L3:0=f', 'L2:0=f\nMB:0=50']);
    expect(p.compare).toEqual(['L3:0=f', 'L2:0=f', 'MB:0=50']);
  });

  it('a closID with no schema must be a pre-configured group', () => {
    expect(planIntelRdt({ closID: 'gold' }, 'c1')).toMatchObject({
      name: 'gold',
      mustExist: true,
      writes: [],
    });
  });

  it('refuses names that are not one resctrl group below the mount', () => {
    for (const closID of ['..', '../../etc', 'a/b', 'info', 'mon_groups', 'mon_data', '']) {
      expect(() => planIntelRdt({ closID }, 'c1')).toThrow(/^linux\.intelRdt\.closID: /);
    }
  });

  it('refuses a memBwSchema that is not one MB: line', () => {
    expect(() => planIntelRdt({ memBwSchema: 'L3:0=f' }, 'c1')).toThrow(/memBwSchema/);
    expect(() => planIntelRdt({ memBwSchema: 'MB:0=20\nL3:0=f' }, 'c1')).toThrow(/memBwSchema/);
  });

  it('asks for the monitoring features enableCMT and enableMBM name', () => {
    expect(planIntelRdt({ enableCMT: true, enableMBM: true }, 'c1').monitoring).toEqual([
      'llc_occupancy',
      'mbm_total_bytes',
    ]);
  });
});

describe('schemataHolds: comparing with what resctrl prints', () => {
  const printed = '    MB:0=100;1=100\n    L3:0=0007f0;1=00001f\n';
  it('matches masks by value and domains one by one', () => {
    expect(schemataHolds(printed, ['L3:0=7f0;1=1f'])).toBeUndefined();
    expect(schemataHolds(printed, ['L3:1=1f', 'MB:1=100'])).toBeUndefined();
  });
  it('names the first domain that differs', () => {
    expect(schemataHolds(printed, ['L3:0=ff'])).toBe('L3:0=ff (the group has 0007f0 there)');
    expect(schemataHolds(printed, ['L2:0=f'])).toBe('L2:0=f (the group has nothing there)');
  });
});

describe('resctrlMount', () => {
  it('finds the mount point of a resctrl filesystem in mountinfo, unescaped', () => {
    const info = [
      '22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw',
      '40 22 0:35 / /sys/fs/res\\040ctrl rw,relatime shared:20 - resctrl resctrl rw',
    ].join('\n');
    expect(resctrlMount(info)).toBe('/sys/fs/res ctrl');
    expect(resctrlMount('22 1 0:21 / /sys rw - sysfs sysfs rw\n')).toBeUndefined();
  });
});

// No resctrl here (no RDT in this CPU, nor in QEMU's): the group's files are
// stood in by a directory, to check what is written where and what is refused.
describe('applyIntelRdt on a stand-in for the resctrl root', () => {
  let root = '';
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('makes the group, writes the schemata and the pid', () => {
    root = mkdtempSync(join(tmpdir(), 'berth-rdt-'));
    const rec = applyIntelRdt({ l3CacheSchema: 'L3:0=f', memBwSchema: 'MB:0=30' }, 'c1', 4242, root);
    expect(rec).toEqual({ dir: join(root, 'c1'), created: true });
    expect(readFileSync(join(root, 'c1', 'schemata'), 'utf8')).toBe('L3:0=f\nMB:0=30\n');
    expect(readFileSync(join(root, 'c1', 'tasks'), 'utf8')).toBe('4242');
  });

  it('joins an existing closID group whose schemata match, and never claims it', () => {
    root = mkdtempSync(join(tmpdir(), 'berth-rdt-'));
    mkdirSync(join(root, 'gold'));
    writeFileSync(join(root, 'gold', 'schemata'), 'L3:0=00ff\n');
    expect(applyIntelRdt({ closID: 'gold', l3CacheSchema: 'L3:0=ff' }, 'c1', 7, root)).toEqual({
      dir: join(root, 'gold'),
      created: false,
    });
    expect(() => applyIntelRdt({ closID: 'gold', l3CacheSchema: 'L3:0=f' }, 'c2', 8, root)).toThrow(
      /the existing group "gold" does not match: L3:0=f/,
    );
  });

  it('refuses a missing pre-configured closID and leaves nothing behind', () => {
    root = mkdtempSync(join(tmpdir(), 'berth-rdt-'));
    expect(() => applyIntelRdt({ closID: 'silver' }, 'c1', 7, root)).toThrow(
      /no pre-configured resctrl group/,
    );
    expect(() => readFileSync(join(root, 'silver', 'tasks'))).toThrow();
  });

  it('refuses monitoring the host does not offer', () => {
    root = mkdtempSync(join(tmpdir(), 'berth-rdt-'));
    expect(() => applyIntelRdt({ enableMBM: true }, 'c1', 7, root)).toThrow(/^linux\.intelRdt\.enableMBM: /);
  });

  it('without a resctrl mount, an error naming the field', () => {
    expect(() => applyIntelRdt({ closID: 'x' }, 'c1', 7, '')).toThrow(/^linux\.intelRdt: .*not mounted/);
  });
});
