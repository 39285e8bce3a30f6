// Integration: a container's cgroup through the CLI: limits, update, stats, pause, ps (runs as root).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Cgroup, cpuSharesToWeight } from '@berth/cgroups';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { alive, containerCgroup, Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

/** The container's cgroup, found through the cgroups API wherever this host's layout keeps it. */
async function cgroupOf(id: string): Promise<Cgroup> {
  const cg = await containerCgroup(id);
  if (cg === undefined) throw new Error(`container ${id} has no cgroup`);
  return cg;
}

/** The limits as the kernel reports them, from whichever files this host's layout has. */
async function limits(cg: Cgroup): Promise<{ memory: number; pids: number }> {
  const stats = await cg.stats();
  return { memory: stats.memory.usage.limit, pids: stats.pids.limit };
}

describe('container cgroups', () => {
  it('applies linux.resources, updates them live, reports stats, pauses and resumes', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'while true; do echo x > /dev/null; sleep 0.05; done'];
      c.linux.resources = { ...c.linux.resources, memory: { limit: 96 * 1024 * 1024 }, pids: { limit: 20 } };
    });
    const id = sb.id('cg');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const pid = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
    const cg = await cgroupOf(id);
    expect(await limits(cg)).toEqual({ memory: 96 * 1024 * 1024, pids: 20 });
    expect(await cg.pids()).toContain(pid);

    expect(sb.berth(['update', '--memory', '64M', '--pids-limit', '30', id])).toMatchObject({
      status: 0,
      stderr: '',
    });
    expect(await limits(cg)).toEqual({ memory: 64 * 1024 * 1024, pids: 30 });
    // runc's flag is --cpu-share (--cpu-shares is accepted too): 512 shares, or cgroup2's weight for them
    for (const [flag, shares] of [
      ['--cpu-share', 512],
      ['--cpu-shares', 256],
    ] as const) {
      expect(sb.berth(['update', flag, String(shares), id])).toMatchObject({ status: 0, stderr: '' });
      if (cg.paths['cpu']) expect((await cg.read('cpu', 'cpu.shares')).trim()).toBe(String(shares));
      else expect(Number(await cg.read('unified', 'cpu.weight'))).toBe(cpuSharesToWeight(shares));
    }
    // a swap limit alone: checked against the memory limit the container has (runc merges too)
    // (where the host accounts swap: v1's memsw files, cgroup2's memory.swap.max)
    const swapFile = cg.paths['memory']
      ? join(cg.paths['memory'], 'memory.memsw.limit_in_bytes')
      : join(cg.paths['unified'] ?? '/nonexistent', 'memory.swap.max');
    const swap = sb.berth(['update', '--memory-swap', '128M', id]);
    if (existsSync(swapFile)) expect(swap).toMatchObject({ status: 0, stderr: '' });
    else expect(swap.stderr).not.toMatch(/without a memory limit/);
    // --memory -1 alone: unlimited, swap with it (runc's rule)
    expect(sb.berth(['update', '--memory', '-1', id])).toMatchObject({ status: 0, stderr: '' });
    expect(sb.berth(['update', '--memory', '64M', id])).toMatchObject({ status: 0, stderr: '' });
    // a bad value is refused whole: nothing is half-applied
    const bad = sb.berth(['update', '--memory', '32M', '--pids-limit', '-5', id]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/linux\.resources\.pids\.limit/);
    expect(await limits(cg)).toEqual({ memory: 64 * 1024 * 1024, pids: 30 });

    const ev = JSON.parse(sb.berth(['events', '--stats', id]).stdout);
    expect(ev).toMatchObject({ type: 'stats', id });
    expect(ev.data.memory.usage.usage).toBeGreaterThan(0);
    expect(ev.data.memory.usage.limit).toBe(64 * 1024 * 1024);
    expect(ev.data.pids.current).toBeGreaterThanOrEqual(1);

    expect(JSON.parse(sb.berth(['ps', '--format', 'json', id]).stdout)).toContain(pid);
    expect(sb.berth(['ps', id]).stdout).toMatch(new RegExp(`\\b${pid}\\b`));

    expect(sb.berth(['pause', id])).toMatchObject({ status: 0, stderr: '' });
    expect(JSON.parse(sb.berth(['state', id]).stdout).status).toBe('paused');
    expect(await cg.isFrozen()).toBe(true);
    expect(sb.berth(['pause', id]).stderr).toMatch(/cannot pause container .*: it is paused/);
    expect(sb.berth(['resume', id])).toMatchObject({ status: 0, stderr: '' });
    expect(JSON.parse(sb.berth(['state', id]).stdout).status).toBe('running');
    expect(await cg.isFrozen()).toBe(false);

    // a paused container can still be deleted with --force
    expect(sb.berth(['pause', id]).status).toBe(0);
    expect(sb.berth(['delete', '--force', id])).toMatchObject({ status: 0, stderr: '' });
    expect(alive(pid)).toBe(false);
  });

  it('an update of the CPU period alone keeps the quota, and of the quota alone the period (runc)', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '300'];
      c.linux.resources = { ...c.linux.resources, cpu: { quota: 50000, period: 100000 } };
    });
    const id = sb.id('cpu');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const cg = await cgroupOf(id);
    // [quota, period] from cgroup2's cpu.max or v1's two files
    const cpu = async () =>
      cg.paths['cpu']
        ? [
            (await cg.read('cpu', 'cpu.cfs_quota_us')).trim(),
            (await cg.read('cpu', 'cpu.cfs_period_us')).trim(),
          ]
        : (await cg.read('unified', 'cpu.max')).trim().split(' ');
    expect(await cpu()).toEqual(['50000', '100000']);
    expect(sb.berth(['update', '--cpu-period', '200000', id])).toMatchObject({ status: 0, stderr: '' });
    expect(await cpu()).toEqual(['50000', '200000']);
    expect(sb.berth(['update', '--cpu-quota', '30000', id])).toMatchObject({ status: 0, stderr: '' });
    expect(await cpu()).toEqual(['30000', '200000']);
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
  });

  it('events reports an OOM kill in the container as {"type":"oom"}, as runc does', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '300'];
      c.linux.resources = { ...c.linux.resources, memory: { limit: 32 * 1024 * 1024 } };
    });
    const id = sb.id('oom');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const events = sb.spawn(['events', '--interval', '30s', id]);
    let out = '';
    events.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const until = async (what: () => boolean, ms: number) => {
      for (const end = Date.now() + ms; !what() && Date.now() < end; )
        await new Promise((r) => setTimeout(r, 50));
      return what();
    };
    try {
      expect(await until(() => out.includes('"type":"stats"'), 15_000)).toBe(true);
      expect(out).not.toContain('"type":"oom"');
      // 64 MiB read into one buffer in a 32 MiB cgroup: the OOM killer ends dd
      const hog = sb.berth(['exec', id, 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1']);
      expect(hog.status).not.toBe(0);
      expect(await until(() => out.includes(`{"type":"oom","id":"${id}"}`), 15_000)).toBe(true);
    } finally {
      events.kill();
      sb.berth(['delete', '--force', id]);
    }
    expect(sb.berth(['state', id]).status).not.toBe(0);
  });

  it("cgroup v2: exec joins the first process's cgroup when the container's own takes no process (runc)", async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '300'];
      // no cgroup namespace: /proc/self/cgroup then shows the whole path
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'cgroup');
    });
    const id = sb.id('busy');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    try {
      const pid = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
      const cg = await cgroupOf(id);
      const cgroupLine = (out: string) => out.split('\n').find((l) => l.startsWith('0::')) ?? '';
      const dir = cg.paths['unified'];
      const offered = dir ? readFileSync(join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/) : [];
      const domain = ['memory', 'io'].find((c) => offered.includes(c));
      if (cg.layout !== 'v2' || dir === undefined || domain === undefined) {
        // v1 and hybrid hosts have no such rule for the hierarchies berth manages: the usual join
        const r = sb.berth(['exec', id, 'cat', '/proc/self/cgroup']);
        expect(r.status, r.stderr).toBe(0);
      } else {
        // what a nested runtime in the container would do: its first process in a cgroup of its
        // own, and a domain controller given to the container's children
        mkdirSync(join(dir, 'inner'));
        writeFileSync(join(dir, 'inner', 'cgroup.procs'), String(pid));
        writeFileSync(join(dir, 'cgroup.subtree_control'), `+${domain}`);
        try {
          const r = sb.berth(['exec', id, 'cat', '/proc/self/cgroup']);
          expect(r.stderr).toBe('');
          expect(cgroupLine(r.stdout)).toBe(`0::${cg.path}/inner`);
        } finally {
          writeFileSync(join(dir, 'cgroup.subtree_control'), `-${domain}`);
          writeFileSync(join(dir, 'cgroup.procs'), String(pid));
          rmdirSync(join(dir, 'inner'));
        }
      }
    } finally {
      expect(sb.berth(['delete', '--force', id]).status).toBe(0);
    }
  });

  it('a device node in linux.devices is not a device allowed: a deny in resources.devices holds', () => {
    const bundle = sb.bundle((c) => {
      c.linux.devices = [{ path: '/dev/kmsg', type: 'c', major: 1, minor: 11, fileMode: 0o600 }];
      c.linux.resources = { devices: [{ allow: false, access: 'rwm' }] };
      c.process.capabilities.bounding.push('CAP_SYSLOG');
      c.process.capabilities.effective.push('CAP_SYSLOG');
      c.process.capabilities.permitted.push('CAP_SYSLOG');
      c.process.args = [
        'sh',
        '-c',
        'test -c /dev/kmsg && echo made; head -c 1 /dev/kmsg >/dev/null && echo READ; true',
      ];
    });
    const r = sb.berth(['run', '-b', bundle, sb.id('devdeny')]);
    expect(r.stdout).toBe('made\n');
    expect(r.stderr).toMatch(/Operation not permitted/);
  });

  it('refuses a cgroupsPath whose cgroup exists and is frozen (it would hang the create), and leaves it as it was', async () => {
    const { Cgroup } = await import('@berth/cgroups');
    const path = `/berth-test-frozen-${process.pid}-${Date.now()}`;
    const cg = await Cgroup.create(path);
    try {
      await cg.freeze();
      const bundle = sb.bundle((c) => {
        c.linux.cgroupsPath = path;
        c.process.args = ['true'];
      });
      const id = sb.id('frozen');
      const r = sb.detached(['create', '-b', bundle, id]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        `berth: linux.cgroupsPath: container's cgroup unexpectedly frozen: ${path} exists and is frozen; thaw it, or give another\n`,
      );
      expect(sb.states()).not.toContain(id);
      expect(await cg.isFrozen()).toBe(true);
    } finally {
      await cg.thaw();
      await cg.delete();
    }
  });

  it('enforces the pids limit inside the container', () => {
    // each started sleep's pid goes to a host directory: a container that never ran leaves no file
    const out = mkdtempSync(join(sb.dir, 'pids-'));
    const bundle = sb.bundle((c) => {
      c.process.args = [
        'sh',
        '-c',
        'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & echo $! >> /out/started; done; echo not reached',
      ];
      c.mounts.push({ destination: '/out', type: 'bind', source: out, options: ['rbind', 'rw'] });
      c.linux.resources = { ...c.linux.resources, pids: { limit: 4 } };
    });
    const r = sb.berth(['run', '-b', bundle, sb.id('pids')]);
    // the shell itself is one of the four: exactly three sleeps started, then fork failed and
    // the shell gave up (a non-interactive ash exits with 2 when it cannot fork)
    expect(readFileSync(join(out, 'started'), 'utf8').trim().split('\n')).toHaveLength(3);
    expect(r.stderr).toMatch(/can't fork: Resource temporarily unavailable/);
    expect(r.stdout).toBe('');
    expect(r.status).toBe(2);
  });

  it("a new cgroup namespace is rooted at the container's own cgroup (runc's order); without one the host's path shows", () => {
    const cgroupLines = (cgroupNs: boolean): { id: string; lines: string[] } => {
      const bundle = sb.bundle((c) => {
        c.process.args = ['cat', '/proc/self/cgroup'];
        c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'cgroup');
        if (cgroupNs) c.linux.namespaces.push({ type: 'cgroup' });
      });
      const id = sb.id(cgroupNs ? 'cgns' : 'nocgns');
      const r = sb.berth(['run', '-b', bundle, id]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      return { id, lines: r.stdout.trim().split('\n') };
    };
    // made after the runtime put the process in its cgroup: every hierarchy shows "/"
    const inNs = cgroupLines(true);
    expect(inNs.lines.length).toBeGreaterThan(0);
    for (const line of inNs.lines)
      expect(line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1), line).toBe('/');
    // the host's cgroup namespace: the container's cgroup by its host path
    const host = cgroupLines(false);
    expect(host.lines.some((l) => l.endsWith(`/berth/${host.id}`))).toBe(true);
    // in every hierarchy berth makes it a directory in: cgroup2 (created in it by clone3) and
    // each v1 controller (it moved itself there after its first sync)
    const managed = new Set(['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids']);
    const ours = host.lines.filter((l) => {
      const [, controllers = ''] = l.split(':');
      return controllers === '' || controllers.split(',').some((c) => managed.has(c));
    });
    expect(ours.length).toBeGreaterThan(0);
    for (const line of ours) expect(line).toMatch(new RegExp(`:/berth/${host.id}$`));
    // where /sys/fs/cgroup is a cgroup2 of its own (a v2 host), the container's cgroup2 mount in
    // that namespace is its own subtree: not the runtime's, which holds every container's cgroup
    const v2 = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === '/sys/fs/cgroup' && l.includes(' - cgroup2 '));
    if (v2) {
      const bundle = sb.bundle((c) => {
        c.process.args = ['ls', '/sys/fs/cgroup'];
        c.linux.namespaces = [
          ...c.linux.namespaces.filter((n: { type: string }) => n.type !== 'cgroup'),
          { type: 'cgroup' },
        ];
      });
      const r = sb.berth(['run', '-b', bundle, sb.id('cgns2')]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.split('\n')).toContain('cgroup.procs');
      expect(r.stdout.split('\n')).not.toContain('berth');
    }
  });

  it('refuses invalid resources in config.json before creating anything', async () => {
    const bundle = sb.bundle((c) => {
      c.linux.resources = { unified: { 'no.such.key': '1' } };
    });
    const id = sb.id('badres');
    const r = sb.berth(['run', '-b', bundle, id]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/linux\.resources\.unified/);
    expect(await containerCgroup(id)).toBeUndefined();
    expect(sb.states()).toEqual([]);
  });
});
