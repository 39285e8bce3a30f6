import { MS } from '@berth/sys';
import { describe, expect, it } from 'vitest';
import { parseMountOptions } from './options.js';

describe('parseMountOptions', () => {
  it('splits flags, propagation and data', () => {
    const p = parseMountOptions(['nosuid', 'strictatime', 'mode=755', 'size=65536k', 'rprivate']);
    expect(p.flags).toBe(MS.NOSUID | MS.STRICTATIME);
    expect(p.data).toBe('mode=755,size=65536k');
    expect(p.propagation).toEqual([MS.PRIVATE | MS.REC]);
  });

  it('lets a later option undo an earlier one', () => {
    expect(parseMountOptions(['ro', 'rw']).flags).toBe(0);
    expect(parseMountOptions(['rw', 'ro']).flags).toBe(MS.RDONLY);
    expect(parseMountOptions(['rbind']).flags).toBe(MS.BIND | MS.REC);
  });

  it('takes idmap and ridmap (the runtime makes the idmapped mount), not both', () => {
    expect(parseMountOptions(['rbind', 'idmap']).idmap).toBe('idmap');
    expect(parseMountOptions(['bind', 'ridmap']).idmap).toBe('ridmap');
    expect(parseMountOptions(['bind']).idmap).toBeUndefined();
    expect(() => parseMountOptions(['bind', 'idmap', 'ridmap'], 'mounts[4].options')).toThrow(
      'mounts[4].options[2]: "idmap" and "ridmap" together',
    );
  });
});
