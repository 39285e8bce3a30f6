// SELinux, run where it is enabled: this file is not part of the host's suite (its
// name does not end in .test.ts) but of the SELinux guest test host's
// (packages/vm/test/selinux-host.test.ts boots Debian's kernel with SELinux as its
// major LSM and the host's root shared read-only; packages/vm/test/selinux/start.sh
// loads Debian's default policy, permissive, and runs vitest in unconfined_execmem_t). It runs
// containers through the CLI with `process.selinuxLabel`, `linux.mountLabel` and
// `berth exec --process-label`, and reads the labels back from the kernel.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Sandbox } from '../helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: tests edit config.json freely
type Config = Record<string, any>;

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.states()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

/** Debian's policy (refpolicy) has no container_t: svirt_t is its MCS-confined guest domain. */
const LABEL = 'system_u:system_r:svirt_t:s0:c1,c5';
const OTHER = 'system_u:system_r:svirt_t:s0:c3,c7';
/** A file type for the container's own mounts, with the container's categories. */
const MOUNT_LABEL = 'system_u:object_r:svirt_tmpfs_t:s0:c1,c5';

/** The domain this file runs in (packages/vm/test/selinux/start.sh): unconfined, and Node may JIT there. */
const HARNESS = 'system_u:system_r:unconfined_execmem_t:s0-s0:c0.c1023';

const attr = (pid: number | 'self') => readFileSync(`/proc/${pid}/attr/current`, 'latin1').replace(/\0/g, '');
const enforce = () => readFileSync('/sys/fs/selinux/enforce', 'latin1').trim();

/** A detached container running `sleep`, its init's pid, and a delete that must succeed. */
function detached(edit: (c: Config) => void): { id: string; pid: number; remove: () => void } {
  const bundle = sb.bundle((c) => {
    c.process.args = ['sleep', '600'];
    edit(c);
  });
  const id = sb.id('se');
  expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
  const pid = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
  return { id, pid, remove: () => expect(sb.berth(['delete', '--force', id]).status).toBe(0) };
}

/** The super options of each mount the container sees, by mount point. */
function superOptions(id: string): Map<string, { fstype: string; options: string }> {
  const r = sb.berth(['exec', id, 'cat', '/proc/self/mountinfo']);
  expect(r.status, r.stderr).toBe(0);
  const out = new Map<string, { fstype: string; options: string }>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [left, right] = line.split(' - ') as [string, string];
    const [fstype, , options] = right.split(' ') as [string, string, string];
    out.set(left.split(' ')[4]!, { fstype, options });
  }
  return out;
}

describe('SELinux (enabled in this kernel, a policy loaded)', () => {
  it('is what berth detects', () => {
    expect(readFileSync('/proc/self/mountinfo', 'latin1')).toMatch(/ - selinuxfs /);
    // permissive: the host's root (a 9p share) carries no labels
    expect(enforce()).toBe('0');
    // the domain packages/vm/test/selinux/start.sh runs the tests in: what a process without a label of its own runs as
    expect(attr('self')).toBe(HARNESS);
    const features = JSON.parse(sb.berth(['features']).stdout);
    expect(features.linux.selinux).toEqual({ enabled: true });
  });

  it('process.selinuxLabel: the container process runs with that label, seen inside and from the host', () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['cat', '/proc/self/attr/current'];
      c.process.selinuxLabel = LABEL;
    });
    const r = sb.berth(['run', '-b', bundle, sb.id('se')]);
    expect(r.stderr).toBe('');
    expect(r.stdout.replace(/\0/g, '')).toBe(LABEL);
    // without a label: the launcher's own (runc's too)
    const plain = sb.bundle((c) => {
      c.process.args = ['cat', '/proc/self/attr/current'];
    });
    expect(sb.berth(['run', '-b', plain, sb.id('se')]).stdout.replace(/\0/g, '')).toBe(HARNESS);
    // from the host, as `ps -Z` reads it
    const c = detached((c) => {
      c.process.selinuxLabel = LABEL;
    });
    try {
      expect(attr(c.pid)).toBe(LABEL);
    } finally {
      c.remove();
    }
  });

  it("berth exec: the container's label by default, --process-label for another", () => {
    const c = detached((c) => {
      c.process.selinuxLabel = LABEL;
    });
    try {
      const own = sb.berth(['exec', c.id, 'cat', '/proc/self/attr/current']);
      expect(own.stderr).toBe('');
      expect(own.stdout.replace(/\0/g, '')).toBe(LABEL);
      const other = sb.berth(['exec', '--process-label', OTHER, c.id, 'cat', '/proc/self/attr/current']);
      expect(other.stderr).toBe('');
      expect(other.stdout.replace(/\0/g, '')).toBe(OTHER);
      // a process object (containerd, podman) carries its own label the same way
      const file = `${sb.dir}/process.json`;
      writeFileSync(
        file,
        JSON.stringify({
          args: ['cat', '/proc/self/attr/current'],
          cwd: '/',
          user: { uid: 0, gid: 0 },
          selinuxLabel: OTHER,
        }),
      );
      expect(sb.berth(['exec', '--process', file, c.id]).stdout.replace(/\0/g, '')).toBe(OTHER);
      // and the container's init kept its own
      expect(attr(c.pid)).toBe(LABEL);
    } finally {
      c.remove();
    }
  });

  it('linux.mountLabel: the context of the tmpfs, devpts and mqueue mounts, and of the files in them', () => {
    const c = detached((c) => {
      c.process.selinuxLabel = LABEL;
      c.linux.mountLabel = MOUNT_LABEL;
      // a masked directory: its empty tmpfs is labelled too (runc's maskPath)
      c.linux.maskedPaths = [...(c.linux.maskedPaths ?? []), '/etc'];
    });
    try {
      const mounts = superOptions(c.id);
      for (const dir of ['/dev', '/dev/shm', '/dev/pts', '/etc']) {
        expect(mounts.get(dir)?.options, dir).toContain(`context="${MOUNT_LABEL}"`);
      }
      // runc's rule: no context= on proc, sysfs, cgroup (nor on bind mounts)
      for (const dir of ['/proc', '/sys', '/sys/fs/cgroup']) {
        expect(mounts.get(dir)?.options ?? '', dir).not.toContain('context=');
      }
      // every file in such a mount has the label (the kernel's answer for the security.selinux xattr)
      expect(sb.berth(['exec', c.id, 'touch', '/dev/shm/f']).status).toBe(0);
      const file = execFileSync('stat', ['-c', '%C', `/proc/${c.pid}/root/dev/shm/f`], { encoding: 'utf8' });
      expect(file.trim()).toBe(MOUNT_LABEL);
      const dev = execFileSync('stat', ['-c', '%C', `/proc/${c.pid}/root/dev/null`], { encoding: 'utf8' });
      expect(dev.trim()).toBe(MOUNT_LABEL);
      // the mqueue mount of the container's IPC namespace: no context= (the kernel refuses it on
      // that superblock), its root directory labelled instead
      expect(mounts.get('/dev/mqueue')).toEqual({
        fstype: 'mqueue',
        options: expect.not.stringContaining('context='),
      });
      const mq = execFileSync('stat', ['-c', '%C', `/proc/${c.pid}/root/dev/mqueue`], { encoding: 'utf8' });
      expect(mq.trim()).toBe(MOUNT_LABEL);
    } finally {
      c.remove();
    }
  });

  it("linux.mountLabel with the host's IPC namespace: the host's mqueue keeps its label", () => {
    const hostMq = `${sb.dir}/host-mqueue`;
    execFileSync('mkdir', ['-p', hostMq]);
    execFileSync('mount', ['-t', 'mqueue', 'mqueue', hostMq]);
    try {
      const label = () => execFileSync('stat', ['-c', '%C', hostMq], { encoding: 'utf8' }).trim();
      const before = label();
      expect(before).not.toBe(MOUNT_LABEL);
      const bundle = sb.bundle((c) => {
        c.process.args = ['true'];
        c.linux.mountLabel = MOUNT_LABEL;
        c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'ipc');
      });
      const r = sb.berth(['run', '-b', bundle, sb.id('seipc')]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(label()).toBe(before);
    } finally {
      execFileSync('umount', [hostMq]);
    }
  });

  it('an mqueue destination that is a symlink out of the rootfs: the label stays inside it', () => {
    // the attack on the in-root `lsm` step (it labels the mqueue root by fd): an image whose
    // mount destination is an absolute symlink to a host directory. The mount and the label
    // are both resolved in the rootfs (RESOLVE_IN_ROOT), so the host directory keeps its label.
    const victim = `${sb.dir}/victim-mq`;
    execFileSync('mkdir', ['-p', victim]);
    const label = () => execFileSync('stat', ['-c', '%C', victim], { encoding: 'utf8' }).trim();
    const before = label();
    expect(before).not.toBe(MOUNT_LABEL);
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '600'];
      c.linux.mountLabel = MOUNT_LABEL;
      c.mounts.push({ destination: '/mq', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'nodev'] });
    });
    symlinkSync(victim, `${bundle}/rootfs/mq`);
    // the same path in the rootfs, where the symlink really leads (berth makes no directory
    // through a symlink: without it the create is refused, which is safe but proves less)
    mkdirSync(`${bundle}/rootfs${victim}`, { recursive: true });
    const id = sb.id('semq');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    try {
      const pid = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
      expect(label()).toBe(before);
      // where it went: the same absolute path, inside the rootfs, made there and labelled
      const inside = execFileSync('stat', ['-c', '%C', `/proc/${pid}/root${victim}`], { encoding: 'utf8' });
      expect(inside.trim()).toBe(MOUNT_LABEL);
      // no mount on the host's directory
      const hostMounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
      expect(hostMounts.filter((l) => l.split(' ')[4] === victim)).toEqual([]);
    } finally {
      expect(sb.berth(['delete', '--force', id]).status).toBe(0);
    }
    expect(label()).toBe(before);
  });

  it('a label the policy does not know fails the create, naming the field, and leaves nothing behind', () => {
    for (const [edit, field] of [
      [
        (c: Config) => (c.process.selinuxLabel = 'system_u:system_r:berth_no_such_t:s0'),
        'process.selinuxLabel',
      ],
      [(c: Config) => (c.linux.mountLabel = 'system_u:object_r:berth_no_such_t:s0'), 'linux.mountLabel'],
    ] as const) {
      const bundle = sb.bundle((c) => {
        c.process.args = ['true'];
        edit(c);
      });
      const id = sb.id('sebad');
      const r = sb.berth(['create', '-b', bundle, id]);
      expect(r.status).toBe(1);
      // checked against the loaded policy before anything is made
      expect(r.stderr).toBe(
        `berth: ${field}: "system_u:${field === 'linux.mountLabel' ? 'object_r' : 'system_r'}:berth_no_such_t:s0" is not a valid context in the loaded SELinux policy\n`,
      );
      expect(sb.berth(['state', id]).status).not.toBe(0);
    }
  });

  it('enforcing: the policy denies the labelled process what its domain may not do', () => {
    // Debian's policy has no domain for containers: svirt_t (a VM's) may not be entered from an
    // unconfined one under no_new_privs (nnp_transition: EPERM) nor from a nosuid mount
    // (nosuid_transition: EACCES), so the exec into the container is denied
    const nnp = sb.bundle((c) => {
      c.process.args = ['true'];
      c.process.selinuxLabel = LABEL;
      c.process.noNewPrivileges = true;
    });
    const labelled = sb.bundle((c) => {
      c.process.args = ['true'];
      c.process.selinuxLabel = OTHER;
      c.process.noNewPrivileges = false;
    });
    const plain = sb.bundle((c) => {
      c.process.args = ['true'];
    });
    const runs: Array<{ status: number | null; stderr: string }> = [];
    writeFileSync('/sys/fs/selinux/enforce', '1');
    try {
      expect(enforce()).toBe('1');
      for (const b of [nnp, labelled, plain]) {
        const r = sb.berth(['run', '-b', b, sb.id('seenf')]);
        runs.push({ status: r.status, stderr: r.stderr });
      }
    } finally {
      writeFileSync('/sys/fs/selinux/enforce', '0');
    }
    expect(runs).toEqual([
      // the launcher's execve of the container's program, refused by the policy; the container removed
      { status: 1, stderr: 'berth: exec "true": EPERM (operation not permitted)\n' },
      { status: 1, stderr: 'berth: exec "true": EACCES (permission denied)\n' },
      // an unconfined domain (the tests'): the same container without a label runs
      { status: 0, stderr: '' },
    ]);
    // the kernel's audit records of those denials, for the containers' domains, enforced
    const avc = execFileSync('dmesg', { encoding: 'utf8' })
      .split('\n')
      .filter((l) => / avc: +denied /.test(l) && / permissive=0$/.test(l.trim()));
    expect(
      avc.some((l) => /\{ nnp_transition /.test(l) && l.includes(`tcontext=${LABEL} `)),
      avc.join('\n'),
    ).toBe(true);
    // without no_new_privs: the transition from a nosuid mount (the bundle is on this guest's nosuid /tmp)
    expect(
      avc.some((l) => /transition \}/.test(l) && l.includes(`tcontext=${OTHER} `)),
      avc.join('\n'),
    ).toBe(true);
  });
});
