// Attacks on the host boundary, through the CLI with real containers (runs as root).
// Each builds the malicious rootfs or config itself, and checks that a host file
// outside the container keeps its owner, mode and content, and that nothing was
// made or mounted outside.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAPABILITIES } from '@berth/spec';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { alive, Sandbox } from './helpers.js';

const sb = new Sandbox();
const hostDir = mkdtempSync(join(tmpdir(), 'berth-victim-'));
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
  expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(hostDir);
});
afterAll(() => {
  sb.cleanup();
  rmSync(hostDir, { recursive: true, force: true });
});

/** A host file with a distinctive owner, mode and content, and a check that all three held. */
function victim(name: string) {
  const path = join(hostDir, name);
  writeFileSync(path, 'host secret\n');
  chmodSync(path, 0o600);
  spawnSync('chown', ['4242:4243', path]);
  const before = statSync(path);
  return {
    path,
    unchanged() {
      const now = lstatSync(path);
      expect(now.isFile()).toBe(true);
      expect({ uid: now.uid, gid: now.gid, mode: now.mode & 0o7777 }).toEqual({
        uid: before.uid,
        gid: before.gid,
        mode: 0o600,
      });
      expect(readFileSync(path, 'utf8')).toBe('host secret\n');
    },
  };
}

/** A host directory that must stay empty. */
function emptyHostDir(name: string) {
  const path = join(hostDir, name);
  mkdirSync(path);
  return { path, empty: () => expect(readdirSync(path)).toEqual([]) };
}

const ok = (r: { status: number | null; stderr: string }) => {
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
};

describe('a rootfs cannot send berth to host paths', () => {
  it('a /dev/null that links to a host file: the file keeps its owner and mode (it was chowned root:root 0666)', () => {
    const v = victim('dev-null-target');
    const b = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'echo x > /dev/null && ls -l /dev/null'];
    });
    rmSync(join(b, 'rootfs/dev'), { recursive: true, force: true });
    mkdirSync(join(b, 'rootfs/dev'));
    symlinkSync(`/proc/self/root${v.path}`, join(b, 'rootfs/dev/null'));
    symlinkSync(`../../../../../../../../..${v.path}`, join(b, 'rootfs/dev/zero'));
    const r = sb.berth(['run', '-b', b, sb.id()]);
    v.unchanged();
    ok(r);
    // the container's /dev is a tmpfs: its /dev/null is the real device, made there
    expect(r.stdout).toMatch(/^crw-rw-rw-\s+1 root\s+root\s+1,\s+3 /);
  });

  it('devices whose parent directory links out of the rootfs are made inside it, or refused', () => {
    const outside = emptyHostDir('devices-outside');
    const v = victim('device-victim');
    for (const link of [
      outside.path,
      `/proc/self/root${outside.path}`,
      `../../../../../../..${outside.path}`,
    ]) {
      const b = sb.bundle((c) => {
        // no tmpfs on /dev: devices go into the image's own /dev, which is the link
        c.mounts = c.mounts.filter((m: { destination: string }) => !m.destination.startsWith('/dev'));
        c.linux.devices = [
          { path: '/dev/evil', type: 'c', major: 1, minor: 3, fileMode: 0o6777, uid: 0, gid: 0 },
          { path: '/dev/sub/dir/evil', type: 'c', major: 1, minor: 5 },
          { path: `/dev/${v.path.split('/').pop()}`, type: 'c', major: 1, minor: 3, fileMode: 0o666 },
        ];
        c.process.args = ['true'];
      });
      rmSync(join(b, 'rootfs/dev'), { recursive: true, force: true });
      symlinkSync(link, join(b, 'rootfs/dev'));
      mkdirSync(join(b, 'rootfs', outside.path), { recursive: true });
      const r = sb.berth(['run', '-b', b, sb.id()]);
      if (link.startsWith('/proc/')) {
        // a magic link is never followed: the create fails and says where
        expect(r.status).toBe(1);
        // (the default devices come first: /dev/null is the first made)
        expect(r.stderr).toMatch(
          /^berth: (linux\.devices\[\d+\]: )?create device \/dev\/(null|evil): .*(ELOOP|EXDEV)/,
        );
      } else {
        ok(r);
        expect(statSync(join(b, 'rootfs', outside.path, 'evil')).isCharacterDevice()).toBe(true);
        expect(statSync(join(b, 'rootfs', outside.path, 'sub/dir/evil')).isCharacterDevice()).toBe(true);
      }
      outside.empty();
      v.unchanged();
    }
    expect(sb.states()).toEqual([]);
  });

  it('mount destinations that link out of the rootfs: nothing made or mounted on the host', () => {
    const outside = emptyHostDir('mounts-outside');
    for (const link of [
      `/proc/self/root${outside.path}`,
      `../../../../../../..${outside.path}`,
      outside.path,
    ]) {
      const b = sb.bundle((c) => {
        c.mounts.push({ destination: '/data/sub/deeper', type: 'tmpfs', source: 'tmpfs' });
        c.mounts.push({
          destination: '/data/file',
          type: 'bind',
          source: '/etc/hostname',
          options: ['bind', 'ro'],
        });
        // the mounts are where the links lead inside the rootfs
        c.process.args = ['sh', '-c', `grep -c " ${outside.path}/" /proc/self/mountinfo || true`];
      });
      symlinkSync(link, join(b, 'rootfs/data'));
      mkdirSync(join(b, 'rootfs', outside.path), { recursive: true });
      const r = sb.berth(['run', '-b', b, sb.id()]);
      if (link.startsWith('/proc/')) {
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/^berth: create directory \/data\/sub\/deeper: .*(ELOOP|EXDEV)/);
      } else {
        ok(r);
        expect(r.stdout.trim()).toBe('2'); // both mounts, inside the container
        expect(existsSync(join(b, 'rootfs', outside.path, 'sub/deeper'))).toBe(true);
      }
      outside.empty();
    }
  });

  it('bind sources inside the rootfs are resolved in it: an image symlink never binds a host path', () => {
    const secret = victim('bind-source-secret');
    for (const idmap of [false, true]) {
      const b = sb.bundle((c) => {
        // the config binds a path of the image; the image made that path a link to the host's
        c.mounts.push({
          destination: '/seen',
          type: 'bind',
          source: 'rootfs/data',
          options: ['rbind', 'rw'],
          ...(idmap
            ? {
                uidMappings: [{ containerID: 0, hostID: 0, size: 65536 }],
                gidMappings: [{ containerID: 0, hostID: 0, size: 65536 }],
              }
            : {}),
        });
        c.process.args = [
          'sh',
          '-c',
          'cat /seen/bind-source-secret 2>&1; echo pwned > /seen/bind-source-secret',
        ];
      });
      symlinkSync(hostDir, join(b, 'rootfs/data'));
      // in the container's root the link leads to its own (empty) copy of that directory
      mkdirSync(join(b, 'rootfs', hostDir), { recursive: true });
      const r = sb.berth(['run', '-b', b, sb.id()]);
      expect(r.stdout).not.toContain('host secret');
      expect(r.status).toBe(0);
      secret.unchanged();
      expect(readFileSync(join(b, 'rootfs', hostDir, 'bind-source-secret'), 'utf8')).toBe('pwned\n');
    }
  });

  it("a bind source inside the rootfs is the container's path, under the mounts before it (runc's mount order)", () => {
    const src = mkdtempSync(join(sb.dir, 'order-'));
    for (const d of ['a/x', 'b/y', 'c/z']) {
      mkdirSync(join(src, d), { recursive: true });
      writeFileSync(join(src, d, 'file'), `${d}\n`);
    }
    const b = sb.bundle((c) => {
      c.process.args = ['cat', '/final/x/y/z/z/file', '/mnt/x/y/z/z/file', '/made/file'];
    });
    const rootfs = join(b, 'rootfs');
    mkdirSync(join(rootfs, 'mnt'), { recursive: true });
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    const bind = (source: string, destination: string) =>
      cfg.mounts.push({ source, destination, type: 'bind', options: ['rbind'] });
    bind(join(src, 'a'), '/mnt');
    bind(join(src, 'b'), '/mnt/x');
    bind(join(src, 'c'), '/mnt/x/y');
    // exists only in the container, under the three mounts above; the target is made to match
    bind(join(rootfs, 'mnt/x/y'), '/mnt/x/y/z');
    bind(join(rootfs, 'mnt'), '/final');
    bind(join(rootfs, 'mnt/x/y/z/z/file'), '/made/file'); // a file: the target is made a file
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const r = sb.berth(['run', '-b', b, sb.id()]);
    ok(r);
    expect(r.stdout).toBe('c/z\nc/z\nc/z\n');
    expect(existsSync(join(rootfs, 'mnt/x'))).toBe(false); // made in the mounts, not in the image
  });

  it('a mount target through a dangling link is made where the link leads in the rootfs, never on the host', () => {
    const outside = emptyHostDir('dangling-outside');
    for (const [jump, made] of [
      // absolute: the host has that directory; the container gets its own
      [outside.path, outside.path],
      // relative, climbing: stops at the container's root
      [`../../../../../../..${outside.path}`, outside.path],
    ] as const) {
      const b = sb.bundle((c) => {
        c.mounts.push(
          { destination: '/etc/hosts', type: 'bind', source: '/etc/hostname', options: ['bind', 'ro'] },
          { destination: '/etc/dir', type: 'tmpfs', source: 'tmpfs' },
        );
        c.process.args = ['sh', '-c', `cat /etc/hosts; grep -c " ${made}/" /proc/self/mountinfo`];
      });
      const rootfs = join(b, 'rootfs');
      rmSync(join(rootfs, 'etc/hosts'), { force: true });
      symlinkSync(jump, join(rootfs, 'jump')); // dangling: nothing there in the image
      symlinkSync('/jump/sub/hosts', join(rootfs, 'etc/hosts'));
      symlinkSync('/jump/dir', join(rootfs, 'etc/dir'));
      const r = sb.berth(['run', '-b', b, sb.id()]);
      ok(r);
      expect(r.stdout).toBe(`${readFileSync('/etc/hostname', 'utf8')}2\n`);
      expect(statSync(join(rootfs, made, 'sub/hosts')).isFile()).toBe(true);
      expect(statSync(join(rootfs, made, 'dir')).isDirectory()).toBe(true);
      outside.empty();
    }
    // a loop of dangling links is an error, not a hang
    const b = sb.bundle((c) => {
      c.mounts.push({ destination: '/loop/x', type: 'tmpfs', source: 'tmpfs' });
    });
    symlinkSync('/loop2', join(b, 'rootfs/loop'));
    symlinkSync('/loop', join(b, 'rootfs/loop2'));
    const r = sb.berth(['run', '-b', b, sb.id()]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/create directory \/loop\/x: ELOOP/);
  });

  it('/proc or /sys that is a symlink in the image is refused, never followed (CVE-2019-19921, CVE-2023-27561)', () => {
    for (const [dir, target] of [
      ['proc', '/elsewhere'],
      ['sys', '/elsewhere'],
      ['proc', '/tmp'],
    ] as const) {
      const b = sb.bundle((c) => {
        c.process.args = ['true'];
      });
      rmSync(join(b, 'rootfs', dir), { recursive: true, force: true });
      mkdirSync(join(b, 'rootfs', target), { recursive: true });
      symlinkSync(target, join(b, 'rootfs', dir));
      const id = sb.id();
      const r = sb.berth(['run', '-b', b, id]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^berth: mounts\\[\\d+\\]: mount ${dir === 'proc' ? 'proc' : 'sysfs'} on /${dir}: must be mounted on ordinary directory: ELOOP`,
        ),
      );
      expect(sb.states()).not.toContain(id);
    }
  });

  it('a working directory through /proc/self/fd/N (leaked fds, CVE-2024-21626) is refused', () => {
    for (const fd of [3, 4, 5, 6, 7, 8]) {
      const b = sb.bundle((c) => {
        c.process.cwd = `/proc/self/fd/${fd}`;
        c.process.args = ['sh', '-c', 'ls ../../../../'];
      });
      const r = sb.berth(['run', '-b', b, sb.id()]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        /^berth: (change to|create) working directory \/proc\/self\/fd\/\d: (ELOOP|ENOENT|ENOTDIR|EXDEV|EPERM|EACCES)/,
      );
    }
  });

  it('masked and read-only paths that link out are resolved in the rootfs, never on the host', () => {
    const v = victim('masked-victim');
    const b = sb.bundle((c) => {
      c.linux.maskedPaths.push('/etc/masked-abs', '/etc/masked-magic');
      c.linux.readonlyPaths.push('/etc/ro-abs');
      c.process.args = [
        'sh',
        '-c',
        `cat /etc/masked-abs; echo; cat ${v.path}; touch /etc/ro-abs/x 2>&1 || true`,
      ];
    });
    mkdirSync(join(b, 'rootfs', hostDir), { recursive: true });
    writeFileSync(join(b, 'rootfs', v.path), 'image copy\n');
    mkdirSync(join(b, 'rootfs/etc/rodir'), { recursive: true });
    symlinkSync(v.path, join(b, 'rootfs/etc/masked-abs'));
    symlinkSync('/etc/rodir', join(b, 'rootfs/etc/ro-abs'));
    const r = sb.berth(['run', '-b', b, sb.id()]);
    ok(r);
    // masked-abs resolved to the image's own copy of that path, which is masked; the host file is untouched
    expect(r.stdout).toBe('\ntouch: /etc/ro-abs/x: Read-only file system\n');
    v.unchanged();
    const m = sb.bundle((c) => {
      c.linux.maskedPaths.push('/etc/masked-magic');
      c.process.args = ['true'];
    });
    symlinkSync(`/proc/self/root${v.path}`, join(m, 'rootfs/etc/masked-magic'));
    const r2 = sb.berth(['run', '-b', m, sb.id()]);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/^berth: mask path \/etc\/masked-magic: open: (ELOOP|EXDEV)/);
    v.unchanged();
  });
});

describe('racing a shared directory', () => {
  it("a container swapping a path component for a symlink cannot send a second container's setup out", () => {
    const shared = join(sb.dir, 'shared');
    mkdirSync(shared);
    const target = emptyHostDir('race-target');
    const a = sb.id();
    // A flips /shared/x between a directory and links out of the rootfs, as fast as it can
    const attacker = sb.bundle((c) => {
      c.mounts.push({ destination: '/shared', type: 'bind', source: shared, options: ['rbind', 'rw'] });
      c.process.args = [
        'sh',
        '-c',
        `while :; do rm -rf /shared/x; mkdir /shared/x; rm -rf /shared/x; ln -s /proc/self/root${target.path} /shared/x; rm -f /shared/x; ln -s ../../../../../../..${target.path} /shared/x; done`,
      ];
    });
    ok(sb.detached(['run', '-d', '-b', attacker, a]));
    try {
      let succeeded = 0;
      for (let i = 0; i < 8; i++) {
        const b = sb.bundle((c) => {
          c.mounts.push({ destination: '/shared', type: 'bind', source: shared, options: ['rbind', 'rw'] });
          c.mounts.push({ destination: '/shared/x/deep', type: 'tmpfs', source: 'tmpfs' });
          c.linux.devices = [{ path: '/shared/x/node', type: 'c', major: 1, minor: 3 }];
          c.process.args = ['true'];
        });
        const r = sb.berth(['run', '-b', b, sb.id()]);
        // either the setup went where the container can see it, or it failed cleanly
        if (r.status === 0) succeeded++;
        else
          expect(r.stderr).toMatch(
            /^berth: (mounts\[\d+\]: |linux\.devices\[\d+\]: )?(create directory|create device|mount tmpfs on) \/shared\/x/,
          );
        target.empty();
      }
      expect(succeeded).toBeGreaterThanOrEqual(0); // how many won the race varies; none may escape
    } finally {
      ok(sb.berth(['delete', '--force', a]));
    }
    target.empty();
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(target.path);
  }, 120_000);
});

describe('a config cannot change the host', () => {
  it("refuses sysctls that are not in the container's own namespace, naming the key (kernel.core_pattern)", () => {
    const before = readFileSync('/proc/sys/kernel/core_pattern', 'utf8');
    try {
      for (const key of ['kernel.core_pattern', 'vm.swappiness', 'kernel/core_pattern']) {
        const b = sb.bundle((c) => {
          c.linux.sysctl = { [key]: '|/tmp/berth-pwned %p' };
        });
        const r = sb.berth(['run', '-b', b, sb.id()]);
        expect(readFileSync('/proc/sys/kernel/core_pattern', 'utf8')).toBe(before);
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(
          `berth: linux.sysctl.${key}: sysctl is not in a separate kernel namespace: it would change the host\n`,
        );
      }
    } finally {
      // undo a regression's damage to the host
      if (readFileSync('/proc/sys/kernel/core_pattern', 'utf8') !== before)
        writeFileSync('/proc/sys/kernel/core_pattern', before);
    }
    expect(sb.states()).toEqual([]);
  });

  it('sets namespaced sysctls inside the container only', () => {
    const before = readFileSync('/proc/sys/kernel/shmmni', 'utf8').trim();
    const value = before === '4000' ? '4001' : '4000';
    const b = sb.bundle((c) => {
      c.linux.sysctl = { 'kernel.shmmni': value };
      c.process.args = ['cat', '/proc/sys/kernel/shmmni'];
    });
    const r = sb.berth(['run', '-b', b, sb.id()]);
    ok(r);
    expect(r.stdout.trim()).toBe(value);
    expect(readFileSync('/proc/sys/kernel/shmmni', 'utf8').trim()).toBe(before);
  });
});

describe("an image's program run as a hook gets no more than the container's process", () => {
  it("a startContainer hook (the image's program, by the spec) runs as the process: its user, capabilities, no_new_privs, seccomp and cgroup, as runc runs it", () => {
    const bundle = sb.bundle((c) => {
      c.root.readonly = false;
      c.process.args = [
        'sh',
        '-c',
        'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status > /tmp/process.out',
      ];
      c.process.user = { uid: 1000, gid: 1000, additionalGids: [1001] };
      c.process.noNewPrivileges = true;
      c.linux.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['sethostname'], action: 'SCMP_ACT_ERRNO' }],
      };
      // the hook's program is the image's: it must not get what the container's process lacks
      c.hooks = {
        startContainer: [
          {
            path: '/bin/sh',
            args: [
              'sh',
              '-c',
              '{ id -u; id -G; grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; cat /proc/self/cgroup; } > /tmp/hook.out 2>&1',
            ],
          },
        ],
      };
    });
    chmodSync(join(bundle, 'rootfs/tmp'), 0o1777);
    const id = sb.id('hookcaps');
    expect(sb.berth(['run', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const hook = readFileSync(join(bundle, 'rootfs/tmp/hook.out'), 'utf8').trim().split('\n');
    const proc = readFileSync(join(bundle, 'rootfs/tmp/process.out'), 'utf8').trim().split('\n');
    expect(hook[0]).toBe('1000');
    expect(hook[1]!.split(' ').sort()).toEqual(['1000', '1001']);
    // exactly the process's capabilities (the default config's: no CAP_DAC_READ_SEARCH, no CAP_SYS_ADMIN)
    expect(hook.slice(2, 6)).toEqual(proc);
    expect(hook.find((l) => l.startsWith('Seccomp:'))).toMatch(/Seccomp:\s+2/);
    expect(hook.find((l) => l.startsWith('NoNewPrivs:'))).toMatch(/NoNewPrivs:\s+1/);
    // in the container's cgroup
    expect(hook.slice(6).join('\n')).toContain(`/berth/${id}`);
  });
});

describe("a container's /proc says nothing to the launcher", () => {
  it('a cap_last_cap the container fakes cannot widen what exec gives: the bounding set is dropped by number', async () => {
    const bundle = sb.bundle((c) => {
      c.process.noNewPrivileges = false;
      for (const set of Object.keys(c.process.capabilities))
        c.process.capabilities[set].push('CAP_SYS_ADMIN');
      c.process.args = [
        'sh',
        '-c',
        'mount -t tmpfs t /mnt && echo 0 > /mnt/c && mount --bind /mnt/c /proc/sys/kernel/cap_last_cap && touch /mnt/ready && exec sleep 300',
      ];
    });
    const id = sb.id('capfake');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const pid = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
    for (let i = 0; i < 100 && !existsSync(`/proc/${pid}/root/mnt/ready`); i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(`/proc/${pid}/root/proc/sys/kernel/cap_last_cap`, 'utf8').trim()).toBe('0');
    const own = /^CapBnd:\s+(\S+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    const r = sb.berth(['exec', id, 'sh', '-c', 'grep -E "^Cap(Bnd|Eff):" /proc/self/status']);
    expect(r.status).toBe(0);
    // the exec'd process has the container's bounding set, not every capability but number 0
    expect(r.stdout).toContain(`CapBnd:\t${own}`);
    expect(r.stdout).toContain(`CapEff:\t${own}`);
    sb.berth(['delete', '--force', id]);
  });
});

describe("delete touches only what is the container's own", () => {
  const initPid = (id: string) => JSON.parse(sb.berth(['state', id]).stdout).pid as number;

  it('never empties a pid namespace the container joined', () => {
    const a = sb.id();
    ok(sb.detached(['run', '-d', '-b', sb.bundle((c) => (c.process.args = ['sleep', '60'])), a]));
    const aPid = initPid(a);
    const b = sb.id();
    const bundle = sb.bundle((c) => {
      c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) =>
        n.type === 'pid' ? { type: 'pid', path: `/proc/${aPid}/ns/pid` } : n,
      );
      c.process.args = ['sleep', '60'];
    });
    ok(sb.detached(['run', '-d', '-b', bundle, b]));
    ok(sb.berth(['delete', '--force', b]));
    expect(alive(aPid)).toBe(true);
    expect(sb.berth(['exec', a, 'true']).status).toBe(0);
    ok(sb.berth(['delete', '--force', a]));
    expect(alive(aPid)).toBe(false);
  });

  it('never empties nor removes a cgroup that existed before the container, nor joins one in use', async () => {
    const { Cgroup } = await import('@berth/cgroups');
    const path = `/berth-test-shared-${process.pid}-${Date.now()}`;
    const shared = await Cgroup.create(path);
    const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      await shared.addProcess(bystander.pid!);
      const b = sb.bundle((c) => {
        c.linux.cgroupsPath = path;
        c.process.args = ['sleep', '60'];
      });
      // a cgroup with processes in it is another's: refused (runc 1.2), nothing made
      const refused = sb.id();
      const r = sb.detached(['run', '-d', '-b', b, refused]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        `berth: linux.cgroupsPath: the container's cgroup is not empty: ${path} has 1 process (${bystander.pid}); give a cgroup of its own\n`,
      );
      expect(sb.states()).not.toContain(refused);
      expect(await shared.pids()).toEqual([bystander.pid!]);
      // an empty one is used; a process that joins it later is not the container's to kill
      bystander.kill('SIGKILL');
      const deadline = Date.now() + 5000;
      while ((await shared.pids()).length && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const id = sb.id();
      ok(sb.detached(['run', '-d', '-b', b, id]));
      const pid = initPid(id);
      const later = spawn('sleep', ['60'], { stdio: 'ignore' });
      try {
        await shared.addProcess(later.pid!);
        expect((await shared.pids()).sort()).toEqual([later.pid!, pid].sort());
        ok(sb.berth(['delete', '--force', id]));
        expect(alive(pid)).toBe(false);
        expect(alive(later.pid!)).toBe(true);
        expect(await shared.pids()).toEqual([later.pid!]);
        for (const dir of Object.values(shared.paths)) expect(existsSync(dir)).toBe(true);
      } finally {
        later.kill('SIGKILL');
      }
    } finally {
      bystander.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 100));
      await shared.delete();
    }
  });
});

describe('read-only means read-only, submounts included', () => {
  it('an rbind,ro volume is read-only in every submount (mount_setattr AT_RECURSIVE)', () => {
    const vol = join(sb.dir, 'vol');
    mkdirSync(join(vol, 'sub'), { recursive: true });
    expect(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', join(vol, 'sub')]).status).toBe(0);
    try {
      const b = sb.bundle((c) => {
        c.mounts.push({ destination: '/vol', type: 'bind', source: vol, options: ['rbind', 'ro'] });
        c.process.args = ['sh', '-c', 'touch /vol/a 2>&1; touch /vol/sub/b 2>&1; true'];
      });
      const r = sb.berth(['run', '-b', b, sb.id()]);
      ok(r);
      expect(r.stdout).toBe(
        'touch: /vol/a: Read-only file system\ntouch: /vol/sub/b: Read-only file system\n',
      );
      expect(existsSync(join(vol, 'sub/b'))).toBe(false);
    } finally {
      spawnSync('umount', [join(vol, 'sub')]);
    }
  });

  it('/sys with the host network is read-only, submounts included', () => {
    const r = sb.berth([
      'run',
      '--rm',
      '--network',
      'host',
      'busybox',
      'sh',
      '-c',
      'grep " /sys" /proc/self/mountinfo | grep -vc " ro," ; true',
    ]);
    ok(r);
    expect(r.stdout.trim()).toBe('0');
  });
});

describe("the launcher's fds lead nowhere on the host", () => {
  it("a container process with CAP_SYS_PTRACE finds no host procfs among a created container's fds (its /proc/1/fd/N/PID/root)", () => {
    // a host-only file, and a host process (this test's) whose root is the host's
    const marker = join(sb.dir, `host-only-${process.pid}`);
    writeFileSync(marker, 'host-only secret\n', { mode: 0o600 });
    const id = sb.id();
    const b = sb.bundle((c) => {
      for (const k of ['bounding', 'effective', 'permitted'])
        c.process.capabilities[k] = [...c.process.capabilities[k], 'CAP_SYS_PTRACE'];
      c.process.args = ['true'];
    });
    ok(sb.detached(['create', '-b', b, id]));
    try {
      // the init waits for `start`, every fd of the launcher's it still has open
      const script = `for f in /proc/1/fd/*; do ls "$f/" >/dev/null 2>&1 && echo "dir $f: $(ls "$f" | head -3 | tr '\n' ' ')"; cat "$f/${process.pid}/root${marker}" 2>/dev/null && echo "LEAK through $f"; done; true`;
      const r = sb.berth(['exec', id, 'sh', '-c', script]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).not.toContain('LEAK');
      expect(r.stdout).not.toContain('host-only secret');
    } finally {
      ok(sb.berth(['delete', '--force', id]));
    }
  });
});

describe('the runtime binaries cannot be reached from inside', () => {
  it('a container holding /proc/PID/exe of berth exec processes cannot write the launcher', async () => {
    const { launcherPath } = await import('@berth/sys');
    const launcher = launcherPath();
    const sha = () => createHash('sha256').update(readFileSync(launcher)).digest('hex');
    const before = sha();
    const id = sb.id();
    const b = sb.bundle((c) => {
      // every capability this host has: the attacker is as strong as a container gets
      const all = readFileSync('/proc/self/status', 'utf8').match(/CapBnd:\s+(\w+)/)![1]!;
      const caps: string[] = [];
      const names = CAPABILITIES; // the index is the capability number
      for (let n = 0; n < names.length; n++) if ((BigInt(`0x${all}`) >> BigInt(n)) & 1n) caps.push(names[n]!);
      for (const k of ['bounding', 'effective', 'permitted']) c.process.capabilities[k] = caps;
      c.root.readonly = false;
      // hold every other process's exe while it runs, then try to write it once it has moved on
      c.process.args = [
        'sh',
        '-c',
        // a subshell per attempt: a failed redirection must not end the attacker
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
        'while :; do for p in /proc/[0-9]*; do n=${p#/proc/}; [ "$n" = 1 ] && continue; ( exec 9<"$p/exe" && sleep 0.02 && echo pwned >/proc/self/fd/9 && echo "WROTE $n" >>/tmp/attack.log ) 2>/dev/null; done; done',
      ];
    });
    const d = sb.detached(['run', '-d', '-b', b, id]);
    expect(d.stderr).toBe('');
    expect(d.status).toBe(0);
    try {
      for (let i = 0; i < 15; i++) {
        const r = sb.berth(['exec', id, 'true']);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
      }
      const log = sb.berth(['exec', id, 'sh', '-c', 'cat /tmp/attack.log 2>/dev/null; true']);
      expect(log.stdout).toBe('');
      expect(sha()).toBe(before);
    } finally {
      ok(sb.berth(['delete', '--force', id]));
    }
  }, 60_000);
});
