import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cgroup, type CgroupError } from '../src/index.js';
import { attachedDevicePrograms } from '../src/v2/devices.js';
import { destroy, runInside, uniqueName, waitFor } from './helpers.js';

/**
 * The v2 driver against the host's real cgroup2 mount. Only hugetlb can be
 * enabled there (the other controllers are bound to v1 hierarchies), so
 * memory/cpu/pids/io on v2 are covered by the temp-tree tests instead.
 */
const UNIFIED = '/sys/fs/cgroup/unified';
const live: Cgroup[] = [];
let hugetlbWasEnabled = true;

const subtree = () => readFileSync(join(UNIFIED, 'cgroup.subtree_control'), 'utf8');

async function fresh(opts: { root?: string } = { root: UNIFIED }): Promise<Cgroup> {
  const cg = await Cgroup.create(uniqueName(), opts);
  live.push(cg);
  return cg;
}

beforeAll(() => {
  hugetlbWasEnabled = subtree().split(/\s+/).includes('hugetlb');
});

afterEach(async () => {
  while (live.length > 0) await destroy(live.pop() as Cgroup);
});

afterAll(() => {
  // hand the root back as we found it: enabling hugetlb there is the one host-wide change these tests make
  if (!hugetlbWasEnabled) writeFileSync(join(UNIFIED, 'cgroup.subtree_control'), '-hugetlb');
  expect(subtree().split(/\s+/).includes('hugetlb')).toBe(hugetlbWasEnabled);
});

describe('v2 driver on the real cgroup2 mount', () => {
  it('selects v2 by filesystem type and creates one directory', async () => {
    const cg = await fresh();
    expect(cg.layout).toBe('v2');
    expect(Object.keys(cg.paths)).toEqual(['unified']);
    expect(existsSync(join(cg.paths['unified'] as string, 'cgroup.procs'))).toBe(true);
  });

  it('adds a process, freezes it via cgroup.freeze and kills it via cgroup.kill', async () => {
    const cg = await fresh();
    const p = await runInside(cg, 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done');
    p.release();
    expect(await cg.pids()).toContain(p.pid);
    await waitFor(() => p.output().length > 10);
    await cg.freeze();
    expect(readFileSync(join(cg.paths['unified'] as string, 'cgroup.events'), 'utf8')).toContain('frozen 1');
    const frozenAt = p.output().length;
    await new Promise((r) => setTimeout(r, 400));
    expect(p.output().length).toBe(frozenAt);
    await cg.thaw();
    await waitFor(() => p.output().length > frozenAt);
    await cg.killAll();
    expect(await cg.pids()).toEqual([]);
    expect((await p.exited).signal).toBe('SIGKILL');
  });

  it('applies a hugetlb limit and reads hugetlb stats', async () => {
    const cg = await fresh();
    await cg.apply({ hugepageLimits: [{ pageSize: '2MB', limit: 8 << 20 }] });
    expect(readFileSync(join(cg.paths['unified'] as string, 'hugetlb.2MB.max'), 'utf8').trim()).toBe(
      String(8 << 20),
    );
    const stats = await cg.stats();
    expect(stats.hugetlb['2MB']).toEqual({ usage: 0, max: 0, failcnt: 0 });
  });

  it('routes hugetlb to cgroup2 on the hybrid host (v1 has no hugetlb here)', async () => {
    const cg = await fresh({});
    expect(cg.layout).toBe('hybrid');
    await cg.apply({
      hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }],
      unified: { 'hugetlb.1GB.max': '0' },
    });
    const dir = cg.paths['unified'] as string;
    expect(readFileSync(join(dir, 'hugetlb.2MB.max'), 'utf8').trim()).toBe(String(4 << 20));
    expect(readFileSync(join(dir, 'hugetlb.1GB.max'), 'utf8').trim()).toBe('0');
    expect(Object.keys((await cg.stats()).hugetlb)).toContain('2MB');
  });

  it('refuses controllers the v2 mount lacks, naming the field, before any write', async () => {
    const cg = await fresh();
    // make hugetlb writable first so that "nothing written" is a real observation
    await cg.apply({ hugepageLimits: [{ pageSize: '2MB', limit: 2 << 20 }] });
    const err = (await cg
      .apply({ hugepageLimits: [{ pageSize: '2MB', limit: 1 << 20 }], memory: { limit: 1 << 30 } })
      .catch((e: unknown) => e)) as CgroupError;
    expect(err.problems).toEqual([
      {
        path: 'linux.resources.memory.limit',
        message: `controller memory is not available on this host (cgroup v2 at ${UNIFIED})`,
      },
    ]);
    // hugetlb was writable, but nothing was written because memory could not be honoured
    expect(readFileSync(join(cg.paths['unified'] as string, 'hugetlb.2MB.max'), 'utf8').trim()).toBe(
      String(2 << 20),
    );
  });

  it('denies and allows /dev/null with an eBPF device program', async () => {
    const cg = await fresh();
    const dir = cg.paths['unified'] as string;
    await cg.apply({
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
      ],
    });
    expect(attachedDevicePrograms(dir)).toHaveLength(1);
    const ok = await runInside(
      cg,
      'echo x > /dev/null && echo wrote-null; echo x > /dev/zero && echo wrote-zero',
    );
    ok.release();
    await ok.exited;
    expect(ok.output()).toContain('wrote-null');
    expect(ok.output()).not.toContain('wrote-zero');
    expect(ok.output()).toMatch(/Operation not permitted/);

    // an update replaces the program rather than stacking a second one
    await cg.apply({ devices: [{ allow: false, access: 'rwm' }] });
    expect(attachedDevicePrograms(dir)).toHaveLength(1);
    const denied = await runInside(cg, 'echo x > /dev/null && echo wrote-null');
    denied.release();
    await denied.exited;
    expect(denied.output()).not.toContain('wrote-null');
    expect(denied.output()).toMatch(/Operation not permitted/);
  });

  it('refuses v1-only settings on v2 before writing', async () => {
    const cg = await fresh();
    const err = (await cg
      .apply({ network: { classID: 1 }, cpu: { realtimeRuntime: 1000 }, memory: { swappiness: 10 } })
      .catch((e: unknown) => e)) as CgroupError;
    expect(err.problems.map((p) => p.path).sort()).toEqual([
      'linux.resources.cpu.realtimeRuntime',
      'linux.resources.memory.swappiness',
      'linux.resources.network',
    ]);
  });
});
