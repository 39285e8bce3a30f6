import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec } from '@berth/spec';
import { CLONE_NEWNS, CLONE_NEWPID } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { capabilitySets } from './caps.js';
import { effectiveResources } from './cgroup.js';
import { planContainer, processEnv } from './plan.js';
import { parseSignal } from './proc.js';
import { validateId } from './state.js';

const bundle = mkdtempSync(join(tmpdir(), 'berth-plan-'));
mkdirSync(join(bundle, 'rootfs'));
afterAll(() => rmSync(bundle, { recursive: true, force: true }));

function spec() {
  const s = defaultSpec();
  s.process!.terminal = false;
  return s;
}

describe('planContainer', () => {
  it('labels the mounts with linux.mountLabel where SELinux is enabled, and drops it elsewhere (runc)', () => {
    const s = spec();
    s.linux!.mountLabel = 'system_u:object_r:container_file_t:s0:c7,c8';
    const devData = (selinux: boolean) =>
      (
        planContainer(s, { bundle, foreground: true, lsms: { apparmor: false, selinux } }).steps.find(
          (x) => x.op === 'mount' && x.fstype === 'tmpfs',
        ) as { data?: string } | undefined
      )?.data;
    expect(devData(true)).toMatch(/,context="system_u:object_r:container_file_t:s0:c7,c8"$/);
    expect(devData(false)).not.toMatch(/context=/);
  });

  it('cgroup v2: a new cgroup namespace gets cgroup2 mounted, unless the container joins a user namespace', () => {
    const cgroupMount = (s: ReturnType<typeof spec>) =>
      planContainer(s, {
        bundle,
        foreground: true,
        cgroupLayout: 'v2',
        cgroupPaths: { unified: '/sys/fs/cgroup/berth/x' },
      }).steps.find(
        (x) => x.op === 'mount' && (x.fstype === 'cgroup2' || x.source === '/sys/fs/cgroup/berth/x'),
      );
    const own = spec();
    own.linux!.namespaces!.push({ type: 'cgroup' });
    expect(cgroupMount(own)).toMatchObject({ fstype: 'cgroup2' });
    // a new cgroup namespace beside a joined user namespace is not that namespace's: the kernel
    // would refuse cgroup2 there (EPERM, EBUSY), and the container's cgroup is bound instead
    const joiner = spec();
    joiner.linux!.namespaces!.push({ type: 'cgroup' }, { type: 'user', path: '/proc/1/ns/user' });
    joiner.linux!.uidMappings = undefined;
    expect(cgroupMount(joiner)).toMatchObject({ source: '/sys/fs/cgroup/berth/x' });
    expect(cgroupMount(joiner)).not.toHaveProperty('fstype');
  });

  it('creates the namespaces, waits for the runtime, mounts, then runs the process steps', () => {
    const { steps, rootfs } = planContainer(spec(), { bundle, foreground: false, fifo: '/run/x/exec.fifo' });
    expect(rootfs).toBe(join(bundle, 'rootfs'));
    const ops = steps.map((s) => s.op);
    const clone = steps[ops.indexOf('clone')] as { flags: number; detach: boolean };
    expect(clone.flags & (CLONE_NEWPID | CLONE_NEWNS)).toBe(CLONE_NEWPID | CLONE_NEWNS);
    expect(clone.detach).toBe(true);
    // the fifo exists before clone; the runtime gets its sync before any mount
    expect(ops.indexOf('mknod')).toBeLessThan(ops.indexOf('clone'));
    expect(ops.indexOf('sync')).toBeLessThan(ops.indexOf('mount'));
    expect(ops.indexOf('pivotRoot')).toBeLessThan(ops.indexOf('sethostname'));
    expect(ops.slice(-5)).toEqual(['chdir', 'lookup', 'ready', 'fifoWait', 'exec']);
    // HOME (none in the env) is read before any LSM or seccomp step
    expect(ops.indexOf('home')).toBeLessThan(ops.indexOf('creds'));
    // the working directory is entered as root first (runc's order), then again, after the
    // user changes and fds are marked close-on-exec; both found in the root
    expect(ops.indexOf('chdir')).toBeLessThan(ops.indexOf('creds'));
    expect(steps[ops.indexOf('chdir')]).toMatchObject({ inRoot: true, first: true });
    expect(ops.indexOf('closeFds')).toBeLessThan(ops.lastIndexOf('chdir'));
    expect(steps[ops.lastIndexOf('chdir')]).toMatchObject({ inRoot: true });
    // a new network namespace gets lo up
    expect(ops).toContain('loopback');
  });

  it('writes sysctls after pivot_root and before /proc/sys turns read-only', () => {
    const s = spec();
    s.linux!.sysctl = { 'net.ipv4.ip_forward': '1' };
    const { steps } = planContainer(s, { bundle, foreground: true });
    const write = steps.findIndex((x) => x.op === 'procWrite' && x.path === 'sys/net/ipv4/ip_forward');
    expect(write).toBeGreaterThan(steps.findIndex((x) => x.op === 'pivotRoot'));
    expect(write).toBeLessThan(steps.findIndex((x) => x.op === 'readonly' && x.path === '/proc/sys'));
  });

  it("accepts only sysctls of namespaces the container has, with runc's rules", () => {
    const plan = (sysctl: Record<string, string>, drop: string[] = []) => {
      const s = spec();
      s.linux!.sysctl = sysctl;
      s.linux!.namespaces = s.linux!.namespaces!.filter((n) => !drop.includes(n.type));
      return planContainer(s, { bundle, foreground: true });
    };
    expect(() => plan({ 'kernel.core_pattern': '|/tmp/x' })).toThrow(
      /linux\.sysctl\.kernel\.core_pattern: sysctl is not in a separate kernel namespace/,
    );
    expect(() => plan({ 'vm.overcommit_memory': '1' })).toThrow(/not in a separate kernel namespace/);
    expect(() => plan({ 'net.ipv4.ip_forward': '1' }, ['network'])).toThrow(/host's network namespace/);
    expect(() => plan({ 'kernel.shmmax': '1' }, ['ipc'])).toThrow(/host's IPC namespace/);
    expect(() => plan({ 'kernel.hostname': 'x' })).toThrow(/conflicts with the "hostname" field/);
    // kernel.domainname with the domainname field: one value, or an error (crun's rule)
    const both = (value: string) => {
      const d = spec();
      d.domainname = 'example.org';
      d.linux!.sysctl = { 'kernel.domainname': value };
      return () => planContainer(d, { bundle, foreground: true });
    };
    expect(both('other.org')).toThrow(
      /linux\.sysctl\.kernel\.domainname: "other\.org" conflicts with the "domainname" field \("example\.org"\): set one/,
    );
    expect(both('example.org')).not.toThrow();
    expect(() => plan({ 'net.ipv4.../../../kernel/core_pattern': 'x' })).toThrow(/is not a sysctl name/);
    const s = spec();
    s.linux!.namespaces!.push({ type: 'network', path: '/proc/self/ns/net' });
    s.linux!.namespaces = s.linux!.namespaces!.filter(
      (n, i, all) => n.type !== 'network' || i === all.length - 1,
    );
    s.linux!.sysctl = { 'net.core.somaxconn': '1' };
    expect(() => planContainer(s, { bundle, foreground: true })).toThrow(/host's network namespace/);
    const ok = plan({
      'kernel.shmmax': '4096',
      'fs.mqueue.msg_max': '20',
      'net/ipv4/ping_group_range': '0 0',
    });
    expect(ok.steps.filter((x) => x.op === 'procWrite').map((x) => (x as { path: string }).path)).toEqual([
      'sys/kernel/shmmax',
      'sys/fs/mqueue/msg_max',
      'sys/net/ipv4/ping_group_range',
    ]);
  });

  it('refuses what berth cannot honour, naming the field', () => {
    const s = spec();
    s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'mount');
    expect(() => planContainer(s, { bundle, foreground: true })).toThrow(/a mount namespace of its own/);
    const t = spec();
    t.process!.terminal = true;
    expect(() => planContainer(t, { bundle, foreground: false, fifo: '/x' })).toThrow(
      /needs --console-socket/,
    );
  });
});

describe('capabilities', () => {
  it('leaves out capabilities the host cannot grant and reports them', () => {
    const host = (1n << 41n) - 1n - (1n << 24n); // all but CAP_SYS_RESOURCE
    const { sets, missing } = capabilitySets(
      { bounding: ['CAP_CHOWN', 'CAP_SYS_RESOURCE'], permitted: ['CAP_CHOWN'] },
      host,
    );
    expect(sets.bounding).toBe(1n);
    expect(missing).toEqual(['CAP_SYS_RESOURCE']);
  });
  it('leaves out names that are no capability and reports them apart', () => {
    const { sets, missing, unknown } = capabilitySets(
      { bounding: ['CAP_KILL', 'CAP_FOO'], effective: ['NET_ADMIN'], permitted: ['CAP_FOO'] },
      ~0n,
    );
    expect(sets.bounding).toBe(1n << 5n);
    expect(sets.effective).toBe(0n);
    expect(missing).toEqual([]);
    expect(unknown).toEqual(['CAP_FOO', 'NET_ADMIN']);
  });
  it('raises ambient capabilities only where they are permitted and inheritable', () => {
    const { sets } = capabilitySets(
      { permitted: ['CAP_KILL'], inheritable: ['CAP_KILL'], ambient: ['CAP_KILL', 'CAP_CHOWN'] },
      ~0n,
    );
    expect(sets.ambient).toBe(1n << 5n);
  });
});

describe('the process environment', () => {
  it("one entry per name, its last value, where the name first appears (runc's)", () => {
    expect(processEnv(['ONE=two', 'PATH=/bin', 'ONE=', 'HOME=/override', 'HOME='])).toEqual([
      'ONE=',
      'PATH=/bin',
      'HOME=',
    ]);
    expect(processEnv(undefined)).toEqual([]);
    // an empty HOME after dedup: HOME comes from /etc/passwd
    const s = spec();
    s.process!.env = ['HOME=/override', 'HOME='];
    expect(planContainer(s, { bundle, foreground: true }).steps.some((x) => x.op === 'home')).toBe(true);
  });
});

describe('device rules', () => {
  it("appends runc's default devices after the config's rules", () => {
    const r = effectiveResources(spec());
    expect(r.devices![0]).toEqual({ allow: false, access: 'rwm' });
    expect(r.devices).toContainEqual({ allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' });
  });
});

describe('ids and signals', () => {
  it('accepts runc ids and refuses path tricks', () => {
    expect(() => validateId('web-1.a_b+c')).not.toThrow();
    for (const bad of ['', '.', '..', 'a/b', '../x', 'a b'])
      expect(() => validateId(bad)).toThrow(/invalid container id/);
  });
  it('parses signals as runc does', () => {
    expect(parseSignal('KILL')).toBe(9);
    expect(parseSignal('sigterm')).toBe(15);
    expect(parseSignal('10')).toBe(10);
    expect(parseSignal('RTMIN+2')).toBe(36);
    expect(parseSignal('NOPE')).toBeUndefined();
  });
});

describe('rlimits', () => {
  it('clamps a hard limit the host cannot grant without CAP_SYS_RESOURCE, and says so', async () => {
    const { clampRlimit } = await import('./rlimits.js');
    const host = { hard: Array.from({ length: 16 }, () => 20000n), canRaise: false };
    expect(clampRlimit('RLIMIT_NOFILE', 1048576n, 1048576n, host)).toEqual({
      soft: 20000n,
      hard: 20000n,
      warning:
        "process.rlimits: RLIMIT_NOFILE hard limit 1048576 is above this host's 20000 and CAP_SYS_RESOURCE is not available: using 20000",
    });
    expect(clampRlimit('RLIMIT_NOFILE', 1024n, 4096n, host)).toEqual({ soft: 1024n, hard: 4096n });
    expect(clampRlimit('RLIMIT_NOFILE', 1048576n, 1048576n, { ...host, canRaise: true })).toEqual({
      soft: 1048576n,
      hard: 1048576n,
    });
  });

  it('reads this host’s hard limits in resource order', async () => {
    const { hostHardLimits } = await import('./rlimits.js');
    const { execFileSync } = await import('node:child_process');
    const nofile = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    const limits = hostHardLimits();
    expect(limits).toHaveLength(16);
    expect(String(limits[7])).toBe(nofile === 'unlimited' ? String(0xffff_ffff_ffff_ffffn) : nofile);
  });
});
