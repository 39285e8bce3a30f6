import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Cgroup } from '../cgroup.js';
import type { CgroupError } from '../errors.js';

/**
 * The kernel here cannot give cgroup2 memory/cpu/pids/io (they are bound to v1),
 * so the v2 writes are checked against a directory tree shaped like cgroupfs.
 */
const FILES: Record<string, string> = {
  'cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma',
  'cgroup.subtree_control': 'cpuset cpu io memory hugetlb pids rdma',
  'cgroup.procs': '',
  'memory.max': 'max',
  'memory.low': '0',
  'memory.swap.max': 'max',
  'memory.current': '1000',
  'memory.events': 'low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n',
  'memory.stat': 'anon 10\nfile 20\n',
  'cpu.weight': '100',
  'cpu.max': 'max 100000',
  'cpu.max.burst': '0',
  'cpu.idle': '0',
  'cpu.stat': 'usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 7\nnr_throttled 6\nthrottled_usec 4\n',
  'cpuset.cpus': '',
  'cpuset.mems': '',
  'pids.max': 'max',
  'pids.current': '3',
  'io.weight': 'default 100',
  'io.max': '',
  'io.stat': '8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n',
  'rdma.max': '',
  'hugetlb.2MB.max': 'max',
};

let root = '';
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'berth-cg2-'));
  const dir = join(root, 'ctr');
  mkdirSync(dir);
  for (const [f, v] of Object.entries(FILES)) {
    writeFileSync(join(root, f), v);
    writeFileSync(join(dir, f), v);
  }
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const read = (f: string) => readFileSync(join(root, 'ctr', f), 'utf8');

describe('v2 driver writes (directory tree)', () => {
  it('writes every v2 resource with runc conversions', async () => {
    const cg = await Cgroup.load('/ctr', { root, layout: 'v2' });
    await cg.apply({
      memory: { limit: 100 << 20, swap: 150 << 20, reservation: 50 << 20, kernel: 1 << 20 },
      cpu: { shares: 1024, quota: 20000, period: 100000, burst: 1000, cpus: '0-1', mems: '0', idle: 1 },
      pids: { limit: 42 },
      blockIO: { weight: 500, throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 300 }] },
      hugepageLimits: [{ pageSize: '2MB', limit: 2 << 20 }],
      rdma: { mlx5_0: { hcaHandles: 3, hcaObjects: 10 } },
      unified: { 'memory.low': '12345' },
    });
    expect(read('memory.max')).toBe(String(100 << 20));
    expect(read('memory.swap.max')).toBe(String(50 << 20));
    expect(read('memory.low')).toBe('12345');
    expect(read('cpu.weight')).toBe('100');
    expect(read('cpu.max')).toBe('20000 100000');
    expect(read('cpu.max.burst')).toBe('1000');
    expect(read('cpu.idle')).toBe('1');
    expect(read('cpuset.cpus')).toBe('0-1');
    expect(read('pids.max')).toBe('42');
    expect(read('io.weight')).toBe('default 4950');
    expect(read('io.max')).toBe('8:0 wiops=300');
    expect(read('hugetlb.2MB.max')).toBe(String(2 << 20));
    expect(read('rdma.max')).toBe('mlx5_0 hca_handle=3 hca_object=10');
  });

  it('reads v2 stats into the typed shape', async () => {
    const cg = await Cgroup.load('/ctr', { root, layout: 'v2' });
    const s = await cg.stats();
    expect(s.memory.events).toEqual({ low: 0, high: 0, max: 4, oom: 2, oomKill: 1 });
    expect(s.memory.cache).toBe(20);
    expect(s.cpu.usage).toMatchObject({ total: 5000, user: 3000, kernel: 2000 });
    expect(s.cpu.throttling).toEqual({ periods: 7, throttledPeriods: 6, throttledTime: 4000 });
    expect(s.pids).toEqual({ current: 3, limit: 0 });
    expect(s.io.serviceBytes).toEqual([
      { major: 8, minor: 0, op: 'Read', value: 100 },
      { major: 8, minor: 0, op: 'Write', value: 200 },
    ]);
  });

  it('rolls back earlier writes when a later one fails', async () => {
    const cg = await Cgroup.load('/ctr', { root, layout: 'v2' });
    // a directory where a file should be makes the write fail after memory.max was written
    rmSync(join(root, 'ctr', 'pids.max'));
    mkdirSync(join(root, 'ctr', 'pids.max'));
    const err = (await cg
      .apply({ memory: { limit: 1 << 20 }, pids: { limit: 5 } })
      .catch((e: unknown) => e)) as CgroupError;
    expect(err.problems[0]?.path).toBe('linux.resources.pids.limit');
    expect(err.message).toContain('rolled back');
    expect(read('memory.max')).toBe('max');
  });

  it('refuses an unknown unified key before writing anything', async () => {
    const cg = await Cgroup.load('/ctr', { root, layout: 'v2' });
    const err = (await cg
      .apply({ pids: { limit: 5 }, unified: { 'memory.nonsense': '1' } })
      .catch((e: unknown) => e)) as CgroupError;
    expect(err.code).toBe('EINVALID');
    expect(err.message).toContain('linux.resources.unified["memory.nonsense"]: unknown key');
    expect(read('pids.max')).toBe('max');
  });
});
