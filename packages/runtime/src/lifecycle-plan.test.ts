import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec } from '@berth/spec';
import { CLONE_NEWNS, CLONE_NEWUTS, encodePlan } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { effectiveResources } from './cgroup.js';
import { KEYRING_PERM_SET, keyringStep, planContainer, SYNC_CREATE_CONTAINER } from './plan.js';

const bundle = mkdtempSync(join(tmpdir(), 'berth-lifecycle-plan-'));
mkdirSync(join(bundle, 'rootfs'));
afterAll(() => rmSync(bundle, { recursive: true, force: true }));

function spec() {
  const s = defaultSpec();
  s.process!.terminal = false;
  return s;
}

const id = (path: string) => {
  const st = statSync(path);
  return `${st.dev}:${st.ino}`;
};
// a namespace file that is not the runtime's: any file will do for the plan (the launcher joins it)
const other = join(bundle, 'ns-file');
writeFileSync(other, '');

describe('namespaces joined by path', () => {
  it('accepts a joined mount namespace: no CLONE_NEWNS, the rootfs is still set up in it', () => {
    const s = spec();
    s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
      n.type === 'mount' ? { type: 'mount', path: other } : n,
    );
    const { steps } = planContainer(s, { bundle, foreground: true, ownNamespaces: {} });
    const clone = steps.find((x) => x.op === 'clone') as { flags: number };
    expect(clone.flags & CLONE_NEWNS).toBe(0);
    const ops = steps.map((x) => x.op);
    expect(ops.indexOf('setns')).toBeLessThan(ops.indexOf('clone'));
    expect(ops).toContain('pivotRoot');
  });

  it("refuses the runtime's own mount namespace, and none at all", () => {
    const s = spec();
    s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
      n.type === 'mount' ? { type: 'mount', path: '/proc/self/ns/mnt' } : n,
    );
    expect(() => planContainer(s, { bundle, foreground: true })).toThrow(
      /linux\.namespaces\[\d\]\.path: \/proc\/self\/ns\/mnt is berth's own mount namespace/,
    );
    s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'mount');
    expect(() => planContainer(s, { bundle, foreground: true })).toThrow(/a mount namespace of its own/);
  });

  it('sets a hostname in a joined uts namespace, never in the runtime’s own', () => {
    const s = spec();
    s.hostname = 'joined';
    s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
      n.type === 'uts' ? { type: 'uts', path: other } : n,
    );
    const { steps } = planContainer(s, {
      bundle,
      foreground: true,
      ownNamespaces: { uts: id('/proc/self/ns/uts') },
    });
    expect((steps.find((x) => x.op === 'clone') as { flags: number }).flags & CLONE_NEWUTS).toBe(0);
    expect(steps).toContainEqual(expect.objectContaining({ op: 'sethostname', name: 'joined' }));
    const own = spec();
    own.hostname = 'host';
    own.linux!.namespaces = own.linux!.namespaces!.map((n) =>
      n.type === 'uts' ? { type: 'uts', path: '/proc/self/ns/uts' } : n,
    );
    expect(() => planContainer(own, { bundle, foreground: true })).toThrow(
      /hostname: .* is berth's own uts namespace/,
    );
    own.linux!.namespaces = own.linux!.namespaces!.filter((n) => n.type !== 'uts');
    expect(() => planContainer(own, { bundle, foreground: true })).toThrow(
      /hostname: setting a hostname needs a uts namespace/,
    );
  });

  it('names a joined path that does not exist', () => {
    const s = spec();
    s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
      n.type === 'mount' ? { type: 'mount', path: join(bundle, 'nope') } : n,
    );
    expect(() => planContainer(s, { bundle, foreground: true })).toThrow(
      /linux\.namespaces\[\d\]\.path: ".*nope" is not a namespace file that exists/,
    );
  });

  it('makes and opens the exec fifo before joining any namespace', () => {
    const s = spec();
    s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
      n.type === 'mount' ? { type: 'mount', path: other } : n,
    );
    const ops = planContainer(s, {
      bundle,
      foreground: false,
      fifo: '/run/x/exec.fifo',
      ownNamespaces: {},
    }).steps.map((x) => x.op);
    expect(ops.slice(0, 3)).toEqual(['mknod', 'fifoOpen', 'setns']);
  });
});

describe('session keyring', () => {
  it('joins the named keyring after the namespaces exist and before the mounts; none without a name', () => {
    const { steps } = planContainer(spec(), { bundle, foreground: true, keyring: '_ses.c1' });
    const k = steps.findIndex((x) => x.op === 'keyring');
    expect(steps[k]).toMatchObject({
      op: 'keyring',
      name: '_ses.c1',
      mask: 0xffffffff,
      set: KEYRING_PERM_SET,
    });
    expect(k).toBeGreaterThan(steps.findIndex((x) => x.op === 'sync'));
    expect(k).toBeLessThan(steps.findIndex((x) => x.op === 'mount'));
    expect(planContainer(spec(), { bundle, foreground: true }).steps.some((x) => x.op === 'keyring')).toBe(
      false,
    );
  });

  it('encodes as launcher op 41: name, mask, set', () => {
    const plan = encodePlan([keyringStep('_ses.x')]);
    // header (12 bytes), then the step: op u16, flags u16, nargs u32
    expect(plan.readUInt16LE(12)).toBe(41);
    expect(plan.readUInt32LE(16)).toBe(3);
    expect(plan.includes(Buffer.from('_ses.x'))).toBe(true);
  });
});

describe('the cgroup joined by the container itself', () => {
  const cgroupJoin = {
    v1: ['/sys/fs/cgroup/cpu/berth/c1', '/sys/fs/cgroup/memory/berth/c1'],
    v2: '/sys/fs/cgroup/unified/berth/c1',
  };

  it('clones into the cgroup2 directory, then joins the v1 ones right after the first sync, before a cgroup namespace', () => {
    const s = spec();
    s.linux!.namespaces!.push({ type: 'cgroup' });
    const { steps } = planContainer(s, { bundle, foreground: true, cgroupJoin });
    const clone = steps.findIndex((x) => x.op === 'clone');
    expect(steps[clone]).toMatchObject({ op: 'clone', cgroup: cgroupJoin.v2 });
    const sync = steps.findIndex((x) => x.op === 'sync');
    expect(steps[sync + 1]).toEqual({
      op: 'cgroupJoin',
      paths: cgroupJoin.v1,
      describe: "join the container's cgroup",
    });
    expect(steps[sync + 2]).toMatchObject({ op: 'unshare' });
  });

  it('plans neither without cgroupJoin (the runtime moves the process then)', () => {
    const { steps } = planContainer(spec(), { bundle, foreground: true });
    expect(steps.some((x) => x.op === 'cgroupJoin')).toBe(false);
    expect(steps.find((x) => x.op === 'clone')).not.toHaveProperty('cgroup');
  });

  it('encodes as launcher op 50 (the v1 directories) and a fourth clone argument (the cgroup2 directory)', () => {
    const join = encodePlan([{ op: 'cgroupJoin', paths: cgroupJoin.v1 }]);
    expect(join.readUInt16LE(12)).toBe(50);
    expect(join.readUInt32LE(16)).toBe(2);
    const clone = encodePlan([{ op: 'clone', flags: 0, detach: false, cgroup: cgroupJoin.v2 }]);
    expect(clone.readUInt16LE(12)).toBe(2);
    expect(clone.readUInt32LE(16)).toBe(4);
    expect(clone.includes(Buffer.from(cgroupJoin.v2))).toBe(true);
  });
});

describe('hooks', () => {
  it('stops for createContainer hooks after the mounts, right before pivot_root', () => {
    const s = spec();
    s.hooks = { createContainer: [{ path: '/bin/true' }], startContainer: [{ path: '/bin/true' }] };
    const { steps } = planContainer(s, { bundle, foreground: true });
    const at = steps.findIndex((x) => x.op === 'sync' && x.id === SYNC_CREATE_CONTAINER);
    expect(at).toBeGreaterThan(0);
    expect(steps[at + 1]!.op).toBe('pivotRoot');
    expect(steps.slice(0, at).filter((x) => x.op === 'mount').length).toBeGreaterThan(0);
    // without createContainer hooks there is no such stop
    expect(
      planContainer(spec(), { bundle, foreground: true }).steps.some(
        (x) => x.op === 'sync' && x.id === SYNC_CREATE_CONTAINER,
      ),
    ).toBe(false);
  });
});

describe('linux.devices and the device cgroup', () => {
  it("a node made is not a node allowed: only the config's rules and runc's defaults (a deny holds)", () => {
    const s = spec();
    s.linux!.devices = [
      { type: 'p', path: '/dev/myfifo', fileMode: 0o600 },
      { type: 'c', path: '/dev/kmsg', major: 1, minor: 11 },
    ];
    s.linux!.resources = { devices: [{ allow: false, access: 'rwm' }] };
    const rules = effectiveResources(s).devices!;
    expect(rules.some((r) => (r.type as string) === 'p')).toBe(false);
    expect(rules.some((r) => r.major === 1 && r.minor === 11)).toBe(false);
    expect(rules[0]).toEqual({ allow: false, access: 'rwm' });
  });
});
