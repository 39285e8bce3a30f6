// Integration: root filesystem setup that real clients ask for (podman's tmpcopyup and
// --privileged devices, every rootfsPropagation value), through the CLI (runs as root).
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const sb = new Sandbox();

/** Whether the host mount that holds `path` is shared (mountinfo's optional fields). */
function hostMountIsShared(path: string): boolean {
  let best = { len: -1, shared: false };
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n')) {
    const f = line.split(' - ')[0]!.split(' ');
    const mp = f[4]!;
    if ((path === mp || path.startsWith(mp === '/' ? '/' : `${mp}/`)) && mp.length > best.len)
      best = { len: mp.length, shared: f.slice(6).some((o) => o.startsWith('shared:')) };
  }
  return best.shared;
}
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
  expect(sb.states().filter((s) => !s.startsWith('@'))).toEqual([]);
});
afterAll(() => sb.cleanup());

describe('root filesystem setup', () => {
  it('tmpcopyup: a tmpfs starts with a copy of what the directory held (owners, modes, links)', () => {
    const b = sb.bundle((c) => {
      c.mounts.push({
        destination: '/etc',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['tmpcopyup', 'mode=755'],
      });
      c.process.args = [
        'sh',
        '-c',
        'grep -c " /etc " /proc/self/mountinfo; cat /etc/greeting; stat -c "%a %u:%g" /etc/secret /etc/sub; readlink /etc/link; echo new > /etc/new && cat /etc/new',
      ];
    });
    writeFileSync(join(b, 'rootfs/etc/greeting'), 'hello from the image\n');
    writeFileSync(join(b, 'rootfs/etc/secret'), 's', { mode: 0o640 });
    mkdirSync(join(b, 'rootfs/etc/sub'), { mode: 0o710 });
    chownSync(join(b, 'rootfs/etc/secret'), 12, 34);
    symlinkSync('/etc/greeting', join(b, 'rootfs/etc/link'));
    const r = sb.berth(['run', '-b', b, sb.id()]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // root.readonly is true in this config: /etc is writable because it is the tmpfs
    expect(r.stdout).toBe('1\nhello from the image\n640 12:34\n710 0:0\n/etc/greeting\nnew\n');
  });

  it("what runc gives every container: lo up, HOME from /etc/passwd, the working directory made, /dev's devices", () => {
    const b = sb.bundle((c) => {
      c.root.readonly = true; // the working directory is made before / is read-only
      c.process.cwd = '/made/for/you';
      c.process.env = c.process.env.filter((e: string) => !e.startsWith('HOME='));
      c.process.user = { uid: 65534, gid: 65534 };
      c.mounts = c.mounts.filter((m: { destination: string }) => m.destination !== '/dev'); // the image's own /dev
      c.process.args = [
        'sh',
        '-c',
        'ip -o link show lo | grep -o "<[^>]*>"; echo "HOME=$HOME"; pwd; stat -c "%n %t:%T" /dev/null /dev/zero /dev/urandom /dev/tty; readlink /dev/fd',
      ];
    });
    const home = readFileSync(join(b, 'rootfs/etc/passwd'), 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[2] === '65534')?.[5];
    const r = sb.berth(['run', '-b', b, sb.id('runc-defaults')]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual([
      expect.stringMatching(/^<LOOPBACK,UP,LOWER_UP>$/),
      `HOME=${home ?? '/'}`,
      '/made/for/you',
      '/dev/null 1:3',
      '/dev/zero 1:5',
      '/dev/urandom 1:9',
      '/dev/tty 5:0',
      '/proc/self/fd',
      '',
    ]);
  });

  it('a working directory only root may enter (entered before the user changes, as runc); an executable only root may run, with CAP_DAC_OVERRIDE', () => {
    const prepare = (b: string) => {
      mkdirSync(join(b, 'rootfs/rootonly'));
      chmodSync(join(b, 'rootfs/rootonly'), 0o700);
      // a busybox only its owner (root) may execute: CAP_DAC_OVERRIDE lets another user run it (execve's rule)
      copyFileSync(join(b, 'rootfs/bin/busybox'), join(b, 'rootfs/rootonly/pwd'));
      chmodSync(join(b, 'rootfs/rootonly/pwd'), 0o700);
    };
    const cwd = sb.bundle((c) => {
      c.process.user = { uid: 1000, gid: 1000 };
      c.process.cwd = '/rootonly';
      c.process.args = ['pwd'];
    });
    prepare(cwd);
    expect(sb.berth(['run', '-b', cwd, sb.id('rootonly-cwd')])).toMatchObject({
      stdout: '/rootonly\n',
      stderr: '',
    });
    const exe = sb.bundle((c) => {
      c.process.user = { uid: 1000, gid: 1000 };
      for (const set of ['bounding', 'effective', 'permitted'])
        c.process.capabilities[set].push('CAP_DAC_OVERRIDE');
      c.process.args = ['/rootonly/pwd'];
    });
    prepare(exe);
    expect(sb.berth(['run', '-b', exe, sb.id('rootonly-exe')])).toMatchObject({ stdout: '/\n', stderr: '' });
  });

  it('HOME: "/" for a uid /etc/passwd lacks, and never through a magic link; an env HOME is kept', () => {
    const run = (edit: NonNullable<Parameters<Sandbox['bundle']>[0]>) => {
      const b = sb.bundle((c) => {
        c.process.env = c.process.env.filter((e: string) => !e.startsWith('HOME='));
        c.process.args = ['sh', '-c', 'echo "$HOME"'];
        edit(c);
      });
      return { b, r: sb.berth(['run', '-b', b, sb.id('home')]) };
    };
    expect(run((c) => (c.process.user = { uid: 4242, gid: 4242 })).r.stdout).toBe('/\n');
    expect(run((c) => c.process.env.push('HOME=/mine')).r.stdout).toBe('/mine\n');
    expect(run((c) => c.process.env.push('HOME=')).r.stdout).toBe('/root\n'); // empty is none (runc)
    // /etc/passwd through /proc/self/root: a magic link, not followed (it could lead out)
    const b = sb.bundle((c) => {
      c.process.env = c.process.env.filter((e: string) => !e.startsWith('HOME='));
      c.process.args = ['sh', '-c', 'echo "$HOME"'];
    });
    writeFileSync(join(b, 'rootfs/etc/real-passwd'), 'root:x:0:0:root:/via-magic-link:/bin/sh\n');
    rmSync(join(b, 'rootfs/etc/passwd'));
    symlinkSync('/proc/self/root/etc/real-passwd', join(b, 'rootfs/etc/passwd'));
    expect(sb.berth(['run', '-b', b, sb.id('home-link')]).stdout).toBe('/\n');
  });

  it('a tmpfs without mode= takes the mode of the directory it covers; a read-only /dev is filled, then made read-only', () => {
    const b = sb.bundle((c) => {
      c.mounts.push({ destination: '/data', type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] });
      // a directory the image lacks, made for the mount: tmpfs's own 1777
      c.mounts.push({ destination: '/fresh', type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] });
      for (const m of c.mounts) if (m.destination === '/dev') m.options.push('ro');
      c.process.args = [
        'sh',
        '-c',
        'stat -c "%a" /data /fresh; test -c /dev/null && test -d /dev/pts && echo filled; touch /dev/x 2>/dev/null || echo dev-ro',
      ];
    });
    mkdirSync(join(b, 'rootfs/data'));
    chmodSync(join(b, 'rootfs/data'), 0o3775);
    expect(sb.berth(['run', '-b', b, sb.id('tmpfs-mode')])).toMatchObject({
      status: 0,
      stdout: '3775\n1777\nfilled\ndev-ro\n',
      stderr: '',
    });
  });

  it('makes the parent directories of a device node (podman --privileged: /dev/cpu/0/cpuid)', () => {
    const b = sb.bundle((c) => {
      c.linux.devices = [{ path: '/dev/cpu/0/fake', type: 'c', major: 1, minor: 3, fileMode: 0o600 }];
      c.process.args = ['sh', '-c', 'stat -c "%F %t:%T %a" /dev/cpu/0/fake'];
    });
    const r = sb.berth(['run', '-b', b, sb.id()]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('character special file 1:3 600\n');
  });

  it('a fifo in linux.devices is made, and needs no device rule', () => {
    const b = sb.bundle((c) => {
      c.linux.devices = [{ path: '/dev/myfifo', type: 'p', fileMode: 0o620 }];
      c.process.args = ['sh', '-c', 'stat -c "%F %a" /dev/myfifo'];
    });
    const r = sb.berth(['run', '-b', b, sb.id()]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('fifo 620\n');
  });

  for (const propagation of [
    'private',
    'rprivate',
    'slave',
    'rslave',
    'shared',
    'rshared',
    'unbindable',
    'runbindable',
  ]) {
    it(`linux.rootfsPropagation ${propagation} works and applies to /`, () => {
      const b = sb.bundle((c) => {
        c.linux.rootfsPropagation = propagation;
        c.process.args = ['sh', '-c', 'awk \'$5 == "/"\' /proc/self/mountinfo'];
      });
      const r = sb.berth(['run', '-b', b, sb.id()]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const fields = r.stdout.split(' - ')[0]!;
      const want = propagation.replace(/^r/, '');
      if (want === 'shared') expect(fields).toMatch(/ shared:\d+/);
      else if (want === 'slave') {
        // a slave of the host's mount when that is shared; a host with a private / gives nothing to follow
        expect(fields).not.toMatch(/shared:|unbindable/);
        if (hostMountIsShared(sb.dir)) expect(fields).toMatch(/ master:\d+/);
      } else if (want === 'unbindable') expect(fields).toMatch(/ unbindable/);
      else expect(fields).not.toMatch(/shared:|master:|unbindable/);
    });
  }
});
