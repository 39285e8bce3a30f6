import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { V1_CONTROLLERS } from '../src/detect.js';
import { Cgroup, CgroupError, detectCgroupLayout, toRuncStats } from '../src/index.js';
import {
  ALLOC_C,
  compileC,
  destroy,
  FORK_C,
  makeTempDir,
  runInside,
  uniqueName,
  waitFor,
} from './helpers.js';
import { host, itIf, itV1, itWith, limitOf } from './host.js';

// Real limits on real processes at the host's default cgroup root, whatever its
// layout (v1, hybrid, v2): what a test reads is derived from Cgroup.paths and
// the layout read from the host. Tests of v1 files run where v1 is mounted.
const tmp = makeTempDir();
let alloc = '';
let forker = '';
const live: Cgroup[] = [];

async function fresh(): Promise<Cgroup> {
  const cg = await Cgroup.create(uniqueName());
  live.push(cg);
  return cg;
}

const read = (cg: Cgroup, ctrl: string, file: string) =>
  readFileSync(join(cg.paths[ctrl] as string, file), 'utf8').trim();

beforeAll(() => {
  alloc = compileC(tmp.dir, 'alloc', ALLOC_C);
  forker = compileC(tmp.dir, 'forker', FORK_C);
});

afterEach(async () => {
  while (live.length > 0) await destroy(live.pop() as Cgroup);
});

afterAll(() => tmp.cleanup());

/** The layout as mountinfo shows it, derived independently of the detection code. */
function layoutFromMountinfo(): string {
  const types = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    const mp = left?.split(' ')[4];
    if (mp !== undefined && right !== undefined) types.set(mp, right.split(' ')[0] as string);
  }
  if (types.get('/sys/fs/cgroup') === 'cgroup2') return 'v2';
  if (types.get('/sys/fs/cgroup/unified') === 'cgroup2') return 'hybrid';
  return 'v1';
}

describe(`this host (${host.layout}): real limits through the API`, () => {
  it('detects the layout by filesystem type', async () => {
    expect(await detectCgroupLayout()).toBe(layoutFromMountinfo());
  });

  it('creates a directory in every mounted controller hierarchy (and the cgroup2 one)', async () => {
    const cg = await fresh();
    const expected = [
      ...V1_CONTROLLERS.filter((c) => host.v1Controllers.has(c)),
      ...(host.unified !== undefined ? ['unified'] : []),
    ];
    expect(Object.keys(cg.paths).sort()).toEqual(expected.sort());
    for (const ctrl of expected) expect(existsSync(cg.paths[ctrl] as string), ctrl).toBe(true);
    if (cg.paths['cpuset']) expect(read(cg, 'cpuset', 'cpuset.cpus')).not.toBe('');
  });

  itV1('cpuset')(
    'a parent cpuset it makes gives its later children cpus and mems itself (cgroup.clone_children)',
    async () => {
      const parent = uniqueName();
      const a = await Cgroup.create(`${parent}/a`);
      const parents = Object.values(a.paths).map((d) => dirname(d));
      try {
        const cpusetParent = dirname(a.paths['cpuset'] as string);
        expect(readFileSync(join(cpusetParent, 'cgroup.clone_children'), 'utf8').trim()).toBe('1');
        // other hierarchies' parents are left as they were
        if (a.paths['memory'])
          expect(readFileSync(join(dirname(a.paths['memory']), 'cgroup.clone_children'), 'utf8').trim()).toBe(
            '0',
          );
        const b = await Cgroup.create(`${parent}/b`);
        live.push(b);
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          const want = readFileSync(join(cpusetParent, file), 'utf8').trim();
          expect(want).not.toBe('');
          expect(read(a, 'cpuset', file)).toBe(want);
          expect(read(b, 'cpuset', file)).toBe(want);
        }
        // a process can join: an empty cpuset would refuse it (ENOSPC)
        const p = await runInside(b, 'exit 0');
        p.release();
        expect((await p.exited).code).toBe(0);
        await destroy(b);
        live.pop();
      } finally {
        await destroy(a);
        for (const d of new Set(parents)) rmdirSync(d);
      }
    },
  );

  itWith('memory')('OOM-kills a process allocating past memory.limit and shows it in stats', async () => {
    const cg = await fresh();
    await cg.apply({ memory: { limit: 32 * 1024 * 1024, swap: 32 * 1024 * 1024 } });
    expect(limitOf(cg, 'memory')).toBe(String(32 * 1024 * 1024));
    const p = await runInside(cg, `exec ${alloc} 256`);
    p.release();
    const { signal } = await p.exited;
    expect(signal).toBe('SIGKILL');
    expect(p.output()).not.toContain('allocated 256 MB');
    const stats = await cg.stats();
    expect(stats.memory.events.oomKill).toBeGreaterThanOrEqual(1);
    expect(stats.memory.usage.limit).toBe(32 * 1024 * 1024);
    const runc = toRuncStats(stats) as {
      memory: { event_count: { oom_kill: number }; usage: { limit: number } };
    };
    expect(runc.memory.event_count.oom_kill).toBeGreaterThanOrEqual(1);
    expect(runc.memory.usage.limit).toBe(32 * 1024 * 1024);
  });

  itWith('memory')('lets an allocation under the limit finish', async () => {
    const cg = await fresh();
    await cg.apply({ memory: { limit: 64 * 1024 * 1024 } });
    const p = await runInside(cg, `exec ${alloc} 8`);
    p.release();
    expect((await p.exited).code).toBe(0);
    expect(p.output()).toContain('allocated 8 MB');
    expect((await cg.stats()).memory.events.oomKill).toBe(0);
  });

  itWith('pids')('stops a fork loop at the pids limit', async () => {
    const cg = await fresh();
    await cg.apply({ pids: { limit: 16 } });
    const p = await runInside(cg, `exec ${forker}`);
    p.release();
    await waitFor(() => p.output().includes('forked'));
    const m = /forked (\d+) then (\w+)/.exec(p.output());
    expect(m?.[2]).toBe('EAGAIN');
    expect(Number(m?.[1])).toBe(15);
    const stats = await cg.stats();
    expect(stats.pids.current).toBe(16);
    expect(stats.pids.limit).toBe(16);
    await cg.killAll();
    expect(await cg.pids()).toEqual([]);
  });

  itWith('cpu')('keeps a busy loop near 0.2 cpu with quota 20000/100000', async () => {
    const cg = await fresh();
    await cg.apply({ cpu: { quota: 20_000, period: 100_000 } });
    const p = await runInside(cg, 'while :; do :; done');
    p.release();
    await new Promise((r) => setTimeout(r, 300));
    const before = (await cg.stats()).cpu.usage.total;
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, 2000));
    const after = await cg.stats();
    const wall = Number(process.hrtime.bigint() - t0);
    const share = (after.cpu.usage.total - before) / wall;
    console.log(`cpu quota 0.2: measured ${(share * 100).toFixed(1)}% of one cpu`);
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThan(0.35);
    expect(after.cpu.throttling.throttledPeriods).toBeGreaterThan(0);
  });

  it('freeze stops a counter, thaw resumes it', async () => {
    const cg = await fresh();
    const p = await runInside(cg, 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done');
    p.release();
    await waitFor(() => p.output().length > 10);
    await cg.freeze();
    expect(await cg.isFrozen()).toBe(true);
    // output written before the freeze may still be in the pipe: let it arrive first
    await new Promise((r) => setTimeout(r, 100));
    const frozenAt = p.output().length;
    await new Promise((r) => setTimeout(r, 500));
    expect(p.output().length).toBe(frozenAt);
    await cg.thaw();
    await waitFor(() => p.output().length > frozenAt);
    expect(await cg.isFrozen()).toBe(false);
  });

  it('kill-all leaves the cgroup empty, including grandchildren', async () => {
    const cg = await fresh();
    const p = await runInside(cg, 'sleep 1000 & sleep 1000 & sleep 1000 & wait');
    p.release();
    await waitFor(async () => (await cg.pids()).length === 4);
    await cg.killAll();
    expect(await cg.pids()).toEqual([]);
    expect((await p.exited).signal).toBe('SIGKILL');
  });

  it('delivers other signals without waiting', async () => {
    const cg = await fresh();
    const p = await runInside(
      cg,
      "trap 'echo got-term; exit 7' TERM; echo trapping; while :; do sleep 0.05; done",
    );
    p.release();
    // the trap is set once the shell says so (a slow machine, e.g. the TCG guest, takes its time)
    await waitFor(() => p.output().includes('trapping'));
    await cg.killAll('SIGTERM');
    expect((await p.exited).code).toBe(7);
    expect(p.output()).toContain('got-term');
  });

  it('delete removes every directory; load then fails and find answers undefined', async () => {
    const name = uniqueName();
    expect(await Cgroup.find(name)).toBeUndefined();
    const cg = await Cgroup.create(name);
    const loaded = await Cgroup.load(name);
    expect(loaded.paths).toEqual(cg.paths);
    expect((await Cgroup.find(name))?.paths).toEqual(cg.paths);
    await cg.delete();
    for (const dir of Object.values(cg.paths)) expect(existsSync(dir)).toBe(false);
    await expect(Cgroup.load(name)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(await Cgroup.find(name)).toBeUndefined();
  });

  itV1('cpu')(
    'a shorter period with a quota under a parent with a quota: the period again after the quota (runc)',
    async () => {
      const parentName = uniqueName();
      const parent = await Cgroup.create(parentName);
      const child = await Cgroup.create(`${parentName}/c`);
      try {
        await parent.apply({ cpu: { period: 100000, quota: 50000 } });
        await child.apply({ cpu: { period: 100000, quota: 50000 } });
        // 10000 first, with the old quota 50000: 5 cpus' worth, over the parent's half: EINVAL
        await child.apply({ cpu: { period: 10000, quota: 3000 } }, { update: true });
        expect((await child.read('cpu', 'cpu.cfs_period_us')).trim()).toBe('10000');
        expect((await child.read('cpu', 'cpu.cfs_quota_us')).trim()).toBe('3000');
      } finally {
        await destroy(child);
        await destroy(parent);
      }
    },
  );

  itV1('devices')('device rules deny and allow /dev/null for real', async () => {
    const cg = await fresh();
    await cg.apply({
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
      ],
    });
    expect(read(cg, 'devices', 'devices.list')).toBe('c 1:3 rwm');
    const ok = await runInside(
      cg,
      'echo x > /dev/null && echo wrote-null; echo x > /dev/zero && echo wrote-zero',
    );
    ok.release();
    await ok.exited;
    expect(ok.output()).toContain('wrote-null');
    expect(ok.output()).not.toContain('wrote-zero');
    await cg.apply({ devices: [{ allow: false, type: 'c', major: 1, minor: 3, access: 'rwm' }] });
    const denied = await runInside(cg, 'echo x > /dev/null && echo wrote-null');
    denied.release();
    await denied.exited;
    expect(denied.output()).not.toContain('wrote-null');
  });

  itV1('devices')(
    'every rule of a run of device rules reaches the kernel (they share one open fd)',
    async () => {
      const cg = await fresh();
      const minors = [3, 5, 7, 8, 9];
      await cg.apply({
        devices: [
          { allow: false, access: 'rwm' },
          ...minors.map((minor) => ({ allow: true, type: 'c' as const, major: 1, minor, access: 'rwm' })),
          { allow: true, type: 'c', major: 5, minor: 0, access: 'rw' },
        ],
      });
      expect(read(cg, 'devices', 'devices.list').split('\n').sort()).toEqual(
        [...minors.map((m) => `c 1:${m} rwm`), 'c 5:0 rw'].sort(),
      );
    },
  );

  itV1(
    'memory',
    'cpu',
    'cpuset',
    'pids',
    'blkio',
  )('applies every v1 memory, cpu and blkio field', async () => {
    const cg = await fresh();
    const dev = host.blockDevice;
    if (dev === undefined) throw new Error('this host has no block device for a blkio rule');
    // a weight needs CFQ or BFQ (blkio.weight, blkio.bfq.weight); a kernel built without BFQ
    // (CONFIG_IOSCHED_BFQ unset) has neither, and a weight is then refused, naming the field
    const blkio = cg.paths['blkio'] as string;
    const weightFile = ['blkio.bfq.weight', 'blkio.weight'].find((f) => existsSync(join(blkio, f)));
    const resources = {
      memory: { limit: 64 << 20, reservation: 32 << 20, swap: 96 << 20, swappiness: 10, kernelTCP: 16 << 20 },
      cpu: { shares: 512, quota: 50_000, period: 100_000, burst: 10_000, cpus: '0', mems: '0', idle: 0 },
      pids: { limit: 100 },
      blockIO: { weight: 300, throttleReadBpsDevice: [{ ...dev, rate: 1048576 }] },
    };
    if (!weightFile) {
      const before = read(cg, 'memory', 'memory.limit_in_bytes');
      await expect(cg.apply(resources)).rejects.toThrow(
        /linux\.resources\.blockIO\.weight: not supported by this kernel: blkio\.weight or blkio\.bfq\.weight does not exist/,
      );
      // refused before the first write
      expect(read(cg, 'memory', 'memory.limit_in_bytes')).toBe(before);
      resources.blockIO = { throttleReadBpsDevice: [{ ...dev, rate: 1048576 }] } as typeof resources.blockIO;
    }
    await cg.apply(resources);
    expect(read(cg, 'memory', 'memory.limit_in_bytes')).toBe(String(64 << 20));
    expect(read(cg, 'memory', 'memory.memsw.limit_in_bytes')).toBe(String(96 << 20));
    expect(read(cg, 'memory', 'memory.soft_limit_in_bytes')).toBe(String(32 << 20));
    expect(read(cg, 'memory', 'memory.swappiness')).toBe('10');
    expect(read(cg, 'cpu', 'cpu.shares')).toBe('512');
    expect(read(cg, 'cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(read(cg, 'cpu', 'cpu.cfs_burst_us')).toBe('10000');
    expect(read(cg, 'cpuset', 'cpuset.cpus')).toBe('0');
    expect(read(cg, 'pids', 'pids.max')).toBe('100');
    if (weightFile) expect(read(cg, 'blkio', weightFile)).toMatch(/300/);
    expect(read(cg, 'blkio', 'blkio.throttle.read_bps_device')).toBe(`${dev.major}:${dev.minor} 1048576`);
    // growing past the current memsw limit needs memsw written first
    await cg.apply({ memory: { limit: 256 << 20, swap: 512 << 20 } }, { update: true });
    expect(read(cg, 'memory', 'memory.limit_in_bytes')).toBe(String(256 << 20));
    expect(read(cg, 'memory', 'memory.memsw.limit_in_bytes')).toBe(String(512 << 20));
    await cg.apply({ memory: { limit: 32 << 20, swap: 32 << 20 } }, { update: true });
    expect(read(cg, 'memory', 'memory.memsw.limit_in_bytes')).toBe(String(32 << 20));
  });
});

describe('bad input: nothing half-applied', () => {
  itWith('memory')('rejects a bad device type before writing anything', async () => {
    const cg = await fresh();
    const before = limitOf(cg, 'memory');
    const err = await cg
      .apply({ memory: { limit: 64 << 20 }, devices: [{ allow: true, type: 'x' as never, access: 'rwm' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CgroupError);
    expect((err as CgroupError).message).toContain('linux.resources.devices[0].type');
    expect(limitOf(cg, 'memory')).toBe(before);
  });

  itWith('memory')('rejects unknown unified keys naming the key', async () => {
    const cg = await fresh();
    const before = limitOf(cg, 'memory');
    const err = (await cg
      .apply({ memory: { limit: 64 << 20 }, unified: { 'memory.bogus_knob': '1' } })
      .catch((e: unknown) => e)) as CgroupError;
    expect(err.code).toBe('EINVALID');
    expect(err.problems[0]?.path).toBe(
      host.unified === undefined ? 'linux.resources.unified' : 'linux.resources.unified["memory.bogus_knob"]',
    );
    expect(limitOf(cg, 'memory')).toBe(before);
  });

  (host.v1Controllers.size === 0
    ? itIf('cgroup v1 controllers', false)
    : itIf('a v1 controller missing from the host', !host.v1Controllers.has('net_cls')))(
    'names a controller the host lacks',
    async () => {
      const cg = await fresh();
      const before = limitOf(cg, 'pids');
      const err = (await cg
        .apply({ pids: { limit: 5 }, network: { classID: 0x100001 } })
        .catch((e: unknown) => e)) as CgroupError;
      expect(err.message).toBe(
        'linux.resources.network.classID: controller net_cls is not available on this host',
      );
      expect(limitOf(cg, 'pids')).toBe(before);
    },
  );

  it('rejects negative and out-of-range values', async () => {
    const cg = await fresh();
    const err = (await cg
      .apply({ memory: { limit: -5 }, cpu: { shares: 1 }, pids: { limit: 1.5 } })
      .catch((e: unknown) => e)) as CgroupError;
    // the OCI shape first (@berth/spec), then what the cgroup files accept
    expect(err.problems.map((p) => p.path)).toEqual([
      'linux.resources.memory.limit',
      'linux.resources.pids.limit',
      'linux.resources.cpu.shares',
    ]);
  });

  itWith('memory', 'cpuset')('rolls back earlier writes when the kernel rejects a later one', async () => {
    const cg = await fresh();
    await cg.apply({ memory: { limit: 64 << 20 } });
    // cpuset comes after memory in the plan; a cpu past the possible ones does not exist on this host
    const err = (await cg
      .apply({ memory: { limit: 16 << 20 }, cpu: { cpus: String(host.maxPossibleCpu + 1) } })
      .catch((e: unknown) => e)) as CgroupError;
    expect(err).toBeInstanceOf(CgroupError);
    expect(err.problems[0]?.path).toBe('linux.resources.cpu.cpus');
    expect(err.message).toContain('rolled back');
    expect(limitOf(cg, 'memory')).toBe(String(64 << 20));
  });

  it('refuses a cgroupsPath escaping with ..', async () => {
    await expect(Cgroup.create('/berth-test-x/../../etc')).rejects.toMatchObject({ code: 'EPATH' });
  });

  itWith('memory')('refuses a memory limit below usage with checkBeforeUpdate', async () => {
    const cg = await fresh();
    const p = await runInside(cg, `exec ${alloc} 24 hold`);
    p.release();
    await waitFor(() => p.output().includes('allocated'));
    const err = (await cg
      .apply({ memory: { limit: 4 << 20, checkBeforeUpdate: true } }, { update: true })
      .catch((e: unknown) => e)) as CgroupError;
    expect(err.problems[0]?.path).toBe('linux.resources.memory.limit');
    expect(err.message).toMatch(/rejecting memory limit 4194304 <= usage \d+ \(checkBeforeUpdate\)/);
  });
});
