import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CGROUP_ROOT, discoverHierarchy } from './detect.js';

describe('discoverHierarchy (detected once per root)', () => {
  it('returns the same layout every time, each caller getting its own copy', async () => {
    const first = await discoverHierarchy();
    const expected = structuredClone(first);
    first.v1['cpu'] = '/somewhere/else';
    first.layout = first.layout === 'v2' ? 'v1' : 'v2';
    const second = await discoverHierarchy();
    expect(second).toEqual(expected);
    expect(second).not.toBe(first);
  });

  it('keeps a different root apart from the host default', async () => {
    const host = await discoverHierarchy(DEFAULT_CGROUP_ROOT);
    const root = mkdtempSync(join(tmpdir(), 'berth-detect-'));
    try {
      // a plain directory under an explicit layout stands in for a hierarchy at that root
      const fake = await discoverHierarchy(root, 'hybrid');
      expect(fake.unified).toBe(join(root, 'unified'));
      for (const mount of Object.values(fake.v1)) expect(mount.startsWith(`${root}/`)).toBe(true);
      const v2 = await discoverHierarchy(root, 'v2');
      expect(v2).toEqual({ layout: 'v2', v1: {}, unified: root });
      // detected at a root that holds no cgroup filesystem: none of the host's mounts, never its cached answer
      const detected = await discoverHierarchy(root).catch((e: unknown) => e);
      if (detected instanceof Error) expect((detected as { code?: string }).code).toBe('ENOCGROUPFS');
      else expect(detected).toEqual({ layout: 'v1', v1: {} });
      // the host's own answer is untouched by either
      expect(await discoverHierarchy(DEFAULT_CGROUP_ROOT)).toEqual(host);
      for (const mount of Object.values(host.v1))
        expect(mount.startsWith(`${DEFAULT_CGROUP_ROOT}/`)).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
