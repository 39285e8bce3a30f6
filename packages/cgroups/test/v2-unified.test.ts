import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect } from 'vitest';
import { Cgroup, type CgroupError, type LinuxResources } from '../src/index.js';
import { attachedDevicePrograms } from '../src/v2/devices.js';
import { enableAvailableV2 } from '../src/v2/enable.js';
import { destroy, runInside, uniqueName, waitFor } from './helpers.js';
import { host, itIf } from './host.js';

/**
 * The v2 driver against the host's real cgroup2 mount: the root itself on a
 * v2 host, /sys/fs/cgroup/unified (or wherever mountinfo says) on a hybrid
 * one. What each test may use is read from the host: the controllers the
 * cgroup2 root lists and the hugepage sizes the kernel offers.
 */
const UNIFIED = host.unified ?? '/nonexistent-cgroup2';
const it = itIf('cgroup2', host.unified !== undefined);
const live: Cgroup[] = [];
let subtreeBefore = new Set<string>();

const words = (s: string) => s.trim().split(/\s+/).filter(Boolean);
const subtree = () => new Set(words(readFileSync(join(UNIFIED, 'cgroup.subtree_control'), 'utf8')));
const hasHugetlb = host.unified !== undefined && host.v2Controllers.has('hugetlb');
const itHugetlb = itIf('the hugetlb controller on cgroup2', hasHugetlb);
if (hasHugetlb && host.hugepageSizes.length === 0)
  throw new Error('hugetlb is listed but the kernel offers no hugepage sizes');
const page = host.hugepageSizes[0] ?? '2MB';
const pageBytes = (name: string): number => {
  const m = /^(\d+)(KB|MB|GB|TB)$/.exec(name);
  if (!m) throw new Error(`bad page size ${name}`);
  return Number(m[1]) * 1024 ** (['KB', 'MB', 'GB', 'TB'].indexOf(m[2] as string) + 1);
};
/** the first cgroup2 controller, with a resources field that needs it, that the host's cgroup2 root does not list */
const ABSENT_V2 = (
  [
    ['memory', 'linux.resources.memory.limit', { memory: { limit: 1 << 30 } }],
    ['pids', 'linux.resources.pids.limit', { pids: { limit: 100 } }],
    ['io', 'linux.resources.blockIO.weight', { blockIO: { weight: 100 } }],
  ] as [string, string, LinuxResources][]
).find(([ctrl]) => !host.v2Controllers.has(ctrl));

async function fresh(opts: { root?: string } = { root: UNIFIED }): Promise<Cgroup> {
  const cg = await Cgroup.create(uniqueName(), opts);
  live.push(cg);
  return cg;
}

beforeAll(() => {
  if (host.unified !== undefined) subtreeBefore = subtree();
});

afterEach(async () => {
  while (live.length > 0) await destroy(live.pop() as Cgroup);
});

afterAll(() => {
  if (host.unified === undefined) return;
  // hand the root back as we found it: enabling a controller there is the one host-wide change these tests make
  const added = [...subtree()].filter((c) => !subtreeBefore.has(c));
  if (added.length > 0)
    writeFileSync(join(UNIFIED, 'cgroup.subtree_control'), added.map((c) => `-${c}`).join(' '));
  expect(subtree()).toEqual(subtreeBefore);
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
    // output written before the freeze may still be in the pipe: let it arrive first
    await new Promise((r) => setTimeout(r, 100));
    const frozenAt = p.output().length;
    await new Promise((r) => setTimeout(r, 400));
    expect(p.output().length).toBe(frozenAt);
    await cg.thaw();
    await waitFor(() => p.output().length > frozenAt);
    await cg.killAll();
    expect(await cg.pids()).toEqual([]);
    expect((await p.exited).signal).toBe('SIGKILL');
  });

  it('kills a frozen cgroup through cgroup.kill, without a thaw: its freezer stays as it was', async () => {
    const cg = await fresh();
    const dir = cg.paths['unified'] as string;
    const p = await runInside(cg, 'while :; do sleep 0.01; done');
    p.release();
    await cg.freeze();
    await cg.killAll();
    expect(await cg.pids()).toEqual([]);
    expect((await p.exited).signal).toBe('SIGKILL');
    // cgroup.kill (Linux 5.14+) is write-only: it is there, not readable. Without it the kill is a
    // freeze, signal and thaw round, which thaws
    expect(readFileSync(join(dir, 'cgroup.freeze'), 'utf8').trim()).toBe(
      existsSync(join(dir, 'cgroup.kill')) ? '1' : '0',
    );
  });

  it('a cgroup whose cgroup.kill the caller may not write (delegated without it) is killed signal by signal', async () => {
    const cg = await fresh();
    const dir = cg.paths['unified'] as string;
    if (!existsSync(join(dir, 'cgroup.kill'))) return; // before Linux 5.14 there is no cgroup.kill to refuse
    const p = await runInside(cg, 'while :; do sleep 0.01; done');
    p.release();
    // root without CAP_DAC_OVERRIDE, and cgroup.kill another user's: as a delegated cgroup
    // whose cgroup.kill systemd did not hand over
    chownSync(join(dir, 'cgroup.kill'), 65534, 65534);
    const script = `import('${new URL('../dist/index.js', import.meta.url).pathname}').then(async (m) => { const cg = await m.Cgroup.load(${JSON.stringify(cg.path)}, { root: ${JSON.stringify(UNIFIED)} }); await cg.killAll(); console.log('killed'); })`;
    const r = spawnSync(
      'setpriv',
      [
        '--bounding-set',
        '-dac_override',
        '--inh-caps',
        '-dac_override',
        '--',
        process.execPath,
        '-e',
        script,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('killed');
    expect((await p.exited).signal).toBe('SIGKILL');
    expect(await cg.pids()).toEqual([]);
  });

  it('a cgroup its owner removed meanwhile (systemd, once a scope is empty) is killed and deleted without error', async () => {
    const cg = await fresh();
    rmdirSync(cg.paths['unified'] as string);
    await cg.killAll();
    await cg.killAll('SIGTERM');
    expect(await cg.pids()).toEqual([]);
    await cg.delete();
  });

  itHugetlb('applies a hugetlb limit and reads hugetlb stats', async () => {
    const cg = await fresh();
    const limit = 4 * pageBytes(page);
    await cg.apply({ hugepageLimits: [{ pageSize: page, limit }] });
    expect(readFileSync(join(cg.paths['unified'] as string, `hugetlb.${page}.max`), 'utf8').trim()).toBe(
      String(limit),
    );
    const stats = await cg.stats();
    expect(stats.hugetlb[page]).toEqual({ usage: 0, max: 0, failcnt: 0 });
  });

  itIf('hybrid layout', host.layout === 'hybrid')('routes hugetlb to cgroup2 when v1 has none', async () => {
    if (host.v1Controllers.has('hugetlb')) {
      // v1 serves hugetlb: nothing may go to cgroup2
      const cg = await fresh({});
      await cg.apply({ hugepageLimits: [{ pageSize: page, limit: 2 * pageBytes(page) }] });
      expect(existsSync(join(cg.paths['unified'] as string, `hugetlb.${page}.max`))).toBe(false);
      return;
    }
    const cg = await fresh({});
    expect(cg.layout).toBe('hybrid');
    const attempt = cg.apply({
      hugepageLimits: [{ pageSize: page, limit: 2 * pageBytes(page) }],
      unified: { [`hugetlb.${host.hugepageSizes[1] ?? `${page}.rsvd`}.max`]: '0' },
    });
    if (!hasHugetlb) {
      // cgroup2 lists no hugetlb: refused by name, nowhere else to put it
      const err = (await attempt.catch((e: unknown) => e)) as CgroupError;
      expect(err.problems.map((p) => p.path)).toContain('linux.resources.hugepageLimits[0]');
      return;
    }
    await attempt;
    const dir = cg.paths['unified'] as string;
    expect(readFileSync(join(dir, `hugetlb.${page}.max`), 'utf8').trim()).toBe(String(2 * pageBytes(page)));
    const second = `hugetlb.${host.hugepageSizes[1] ?? `${page}.rsvd`}.max`;
    expect(readFileSync(join(dir, second), 'utf8').trim()).toBe('0');
    expect(Object.keys((await cg.stats()).hugetlb)).toContain(page);
  });

  itIf('a cgroup2 controller missing from the host', ABSENT_V2 !== undefined)(
    'refuses controllers the v2 mount lacks, naming the field, before any write',
    async () => {
      const [ctrl, field, resources] = ABSENT_V2 as [string, string, LinuxResources];
      const cg = await fresh();
      // with hugetlb, make a file writable first so that "nothing written" is a real observation
      const limit = pageBytes(page);
      if (hasHugetlb) await cg.apply({ hugepageLimits: [{ pageSize: page, limit: 2 * limit }] });
      const err = (await cg
        .apply({ ...(hasHugetlb ? { hugepageLimits: [{ pageSize: page, limit }] } : {}), ...resources })
        .catch((e: unknown) => e)) as CgroupError;
      expect(err.problems).toEqual([
        {
          path: field,
          message: `controller ${ctrl} is not available on this host (cgroup v2 at ${UNIFIED})`,
        },
      ]);
      // hugetlb was writable, but nothing was written because the other controller could not be honoured
      if (hasHugetlb) {
        expect(readFileSync(join(cg.paths['unified'] as string, `hugetlb.${page}.max`), 'utf8').trim()).toBe(
          String(2 * limit),
        );
      }
    },
  );

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

  itIf('a controller on cgroup2', host.v2Controllers.size > 0)(
    'gives a cgroup every controller the levels above it offer, nothing asked for (as runc and crun)',
    async () => {
      const parent = join(UNIFIED, uniqueName());
      const child = join(parent, 'inner');
      mkdirSync(child, { recursive: true });
      try {
        await enableAvailableV2(UNIFIED, child);
        const offered = words(readFileSync(join(UNIFIED, 'cgroup.controllers'), 'utf8')).sort();
        expect(words(readFileSync(join(child, 'cgroup.controllers'), 'utf8')).sort()).toEqual(offered);
        // the child itself is a leaf: it gives nothing further down
        expect(readFileSync(join(child, 'cgroup.subtree_control'), 'utf8').trim()).toBe('');
      } finally {
        rmdirSync(child);
        rmdirSync(parent);
      }
    },
  );

  itIf('a cgroup2-only host', host.layout === 'v2')(
    'a container cgroup without limits still has memory.current and cpu.stat (what stats read)',
    async () => {
      const cg = await Cgroup.create(uniqueName());
      live.push(cg);
      const dir = cg.paths['unified'] as string;
      const offered = words(readFileSync(join(host.unified as string, 'cgroup.controllers'), 'utf8'));
      expect(words(readFileSync(join(dir, 'cgroup.controllers'), 'utf8')).sort()).toEqual(offered.sort());
      if (offered.includes('memory')) expect(existsSync(join(dir, 'memory.current'))).toBe(true);
      expect(existsSync(join(dir, 'cpu.stat'))).toBe(true);
    },
  );
});
