import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec } from '@berth/spec';
import { CLONE_NEWTIME, type CompiledSeccomp, type PlanStep } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { planExec } from './exec.js';
import { planContainer } from './plan.js';
import { planProcessSecurity, planTimeNamespace } from './security.js';

const bundle = mkdtempSync(join(tmpdir(), 'berth-security-plan-'));
mkdirSync(join(bundle, 'rootfs'));
afterAll(() => rmSync(bundle, { recursive: true, force: true }));

const seccomp: CompiledSeccomp = { bpf: Buffer.alloc(16, 1), flags: 2, notify: false, skipped: [] };
const noLsm = { apparmor: false, selinux: false };

function spec() {
  const s = defaultSpec();
  s.process!.terminal = false;
  s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW' };
  return s;
}

const ops = (steps: PlanStep[]) => steps.map((s) => s.op);

describe('where the seccomp filter goes (runc order)', () => {
  it('with noNewPrivileges: after the lookup, the last step before the process waits to exec', () => {
    const s = spec();
    s.process!.noNewPrivileges = true;
    const { steps } = planContainer(s, {
      bundle,
      foreground: false,
      fifo: '/run/x/fifo',
      seccomp,
      lsms: noLsm,
    });
    const o = ops(steps);
    expect(o.slice(-5)).toEqual(['lookup', 'seccomp', 'ready', 'fifoWait', 'exec']);
    expect(o.indexOf('noNewPrivs')).toBeLessThan(o.indexOf('seccomp'));
    expect(steps[o.indexOf('seccomp')]).toMatchObject({ bpf: seccomp.bpf, flags: 2, notify: false });
  });

  it('without noNewPrivileges: before the capabilities are dropped (it needs CAP_SYS_ADMIN then)', () => {
    const s = spec();
    s.process!.noNewPrivileges = false;
    const o = ops(planContainer(s, { bundle, foreground: true, seccomp, lsms: noLsm }).steps);
    expect(o.indexOf('seccomp')).toBeGreaterThan(o.indexOf('pivotRoot'));
    expect(o.indexOf('seccomp')).toBe(o.indexOf('creds') - 1);
    expect(o).not.toContain('noNewPrivs');
  });

  it('exec puts the container filter on the new process too', async () => {
    const { steps } = await planExec(
      { cwd: '/', args: ['sh'], noNewPrivileges: true },
      { pid: process.pid, foreground: true, seccomp },
    );
    expect(ops(steps).slice(-3)).toEqual(['lookup', 'seccomp', 'exec']);
  });

  it('a config with seccomp cannot be planned without its compiled filter', () => {
    expect(() => planContainer(spec(), { bundle, foreground: true, lsms: noLsm })).toThrow(
      /^linux\.seccomp: the profile was not compiled/,
    );
  });
});

describe('capabilities', () => {
  it('a missing process.capabilities means empty sets, not "keep everything"', () => {
    const s = spec();
    delete s.linux!.seccomp;
    delete s.process!.capabilities;
    const { steps } = planContainer(s, { bundle, foreground: true, lsms: noLsm });
    expect(steps.find((x) => x.op === 'creds')).toMatchObject({
      caps: { bounding: 0n, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n },
    });
  });
});

describe('planProcessSecurity', () => {
  it('scheduler, I/O priority and personality come before the user changes, in runc order', () => {
    const { beforeCreds, last } = planProcessSecurity(
      {
        cwd: '/',
        scheduler: { policy: 'SCHED_RR', priority: 5, flags: ['SCHED_FLAG_RESET_ON_FORK'] },
        ioPriority: { class: 'IOPRIO_CLASS_IDLE', priority: 7 },
      },
      { personality: { domain: 'LINUX32' }, lsms: noLsm },
    );
    expect(last).toEqual([]);
    expect(beforeCreds.map((s) => s.op)).toEqual(['sched', 'ioprio', 'personality']);
    expect(beforeCreds[0]).toMatchObject({ policy: 2, priority: 5, flags: 1n });
    expect(beforeCreds[1]).toMatchObject({ value: (3 << 13) | 7 });
    expect(beforeCreds[2]).toMatchObject({ persona: 8 });
  });

  it('writes the AppArmor profile and SELinux label where the host has them', () => {
    const { beforeCreds } = planProcessSecurity(
      { cwd: '/', apparmorProfile: 'berth-default', selinuxLabel: 'system_u:system_r:container_t:s0' },
      { lsms: { apparmor: true, selinux: true } },
    );
    expect(beforeCreds[0]).toMatchObject({ op: 'lsm', value: 'exec berth-default' });
    expect((beforeCreds[0] as { attr: string }).attr).toMatch(/^thread-self\/attr\/(apparmor\/)?exec$/);
    expect(beforeCreds[1]).toMatchObject({
      op: 'lsm',
      attr: 'thread-self/attr/exec',
      value: 'system_u:system_r:container_t:s0',
    });
  });

  it('"unconfined" asks for no AppArmor profile: nothing to write, on any host', () => {
    expect(
      planProcessSecurity({ cwd: '/', apparmorProfile: 'unconfined' }, { lsms: noLsm }).beforeCreds,
    ).toEqual([]);
  });

  it('names the field the host cannot honour', () => {
    expect(() => planProcessSecurity({ cwd: '/', apparmorProfile: 'p' }, { lsms: noLsm })).toThrow(
      /^process\.apparmorProfile: AppArmor is not enabled on this host/,
    );
    expect(() => planProcessSecurity({ cwd: '/', selinuxLabel: 'l' }, { lsms: noLsm })).toThrow(
      /^process\.selinuxLabel: SELinux is disabled/,
    );
    expect(() => planProcessSecurity({ cwd: '/', scheduler: { policy: 'SCHED_ISO' } }, {})).toThrow(
      /^process\.scheduler\.policy: SCHED_ISO is not a policy Linux implements/,
    );
    expect(() =>
      planProcessSecurity({ cwd: '/' }, { personality: { domain: 'LINUX', flags: ['ADDR_NO_RANDOMIZE'] } }),
    ).toThrow(/^linux\.personality\.flags: /);
  });
});

describe('time namespaces', () => {
  it('are unshared before the clone, with the offsets written for the children', () => {
    const s = spec();
    delete s.linux!.seccomp;
    s.linux!.namespaces!.push({ type: 'time' });
    s.linux!.timeOffsets = { monotonic: { secs: -5, nanosecs: 10 }, boottime: { secs: 100 } };
    const { steps } = planContainer(s, { bundle, foreground: true, lsms: noLsm });
    const o = ops(steps);
    const clone = steps[o.indexOf('clone')] as { flags: number };
    expect(clone.flags & CLONE_NEWTIME).toBe(0); // clone(2) would read 0x80 as the exit signal
    expect(steps[o.indexOf('clone') - 2]).toMatchObject({ op: 'unshare', flags: CLONE_NEWTIME });
    expect(steps[o.indexOf('clone') - 1]).toMatchObject({
      op: 'lsm',
      attr: 'self/timens_offsets',
      value: '1 -5 10\n7 100 0\n',
    });
  });

  it('offsets need a new time namespace', () => {
    const s = spec();
    s.linux!.timeOffsets = { monotonic: { secs: 1 } };
    expect(() => planTimeNamespace(s, false, CLONE_NEWTIME)).toThrow(
      /^linux\.timeOffsets: needs a new time namespace/,
    );
    expect(planTimeNamespace(spec(), false, CLONE_NEWTIME)).toEqual([]);
  });
});
