// config-linux.md: namespaces, user namespace mappings, sysctl, cgroups
// (cgroupsPath and resources), seccomp, time namespace offsets, personality, intelRdt.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';
import { type Config, host, req, Suite } from '../src/harness.js';

const s = new Suite();
afterAll(() => s.cleanup());
afterEach(async () => {
  expect(await s.settle()).toEqual({ states: [], mounts: [], cgroups: [] });
});

async function createFails(edit: (c: Config, bundle: string) => void): Promise<string> {
  const b = s.bundle(edit);
  const id = s.id();
  const r = await s.createLogged(id, b);
  expect(r.status, 'create must fail').not.toBe(0);
  expect(await s.state(id)).toBeUndefined();
  return r.stderr;
}

/** A namespace of `type` (unshare's --net, --uts, …) bound to a file of this suite; unmounted by the caller. */
function nsFile(flag: string, command: string[] = ['true']): string {
  const f = join(s.dir, `ns-${flag}-${s.id('ns')}`);
  writeFileSync(f, '');
  const r = spawnSync('unshare', [`--${flag}=${f}`, ...command], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return f;
}

req('L-NS-NEW', 'each listed namespace without a path is a new one', async () => {
  const { report } = await s.run(s.bundle());
  for (const type of ['pid', 'net', 'ipc', 'uts', 'mnt', 'cgroup']) {
    expect(report.ns[type], type).not.toBe(host.ns(type));
  }
  expect(report.pid).toBe(1);
});

req('L-NS-INHERIT', "a namespace type not listed is the runtime's own", async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c.linux.namespaces = c.linux.namespaces.filter(
        (n: { type: string }) => !['network', 'ipc'].includes(n.type),
      );
    }),
  );
  expect(report.ns.net).toBe(host.ns('net'));
  expect(report.ns.ipc).toBe(host.ns('ipc'));
  expect(report.ns.uts).not.toBe(host.ns('uts'));
});

req('L-NS-PATH', 'a namespace with a path: the process joins that namespace', async () => {
  const f = nsFile('uts', ['hostname', 'joined-by-path']);
  try {
    const { report } = await s.run(
      s.bundle((c) => {
        delete c.hostname;
        c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) =>
          n.type === 'uts' ? { type: 'uts', path: f } : n,
        );
      }),
    );
    expect(report.ns.uts).toBe(`uts:[${statSync(f).ino}]`);
    expect(report.hostname).toBe('joined-by-path');
  } finally {
    spawnSync('umount', [f]);
  }
});

req('L-NS-PATH-TYPE', 'a namespace path of another type is an error', async () => {
  const f = nsFile('uts');
  try {
    await createFails((c) => {
      c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) =>
        n.type === 'network' ? { type: 'network', path: f } : n,
      );
    });
  } finally {
    spawnSync('umount', [f]);
  }
});

req('L-NS-DUP', 'a namespace type listed twice is an error', async () => {
  await createFails((c) => c.linux.namespaces.push({ type: 'pid' }));
});

req('L-USERNS', 'uidMappings and gidMappings: the user namespace maps ids as listed', async () => {
  const b = s.bundle((c) => {
    c.linux.namespaces.push({ type: 'user' });
    c.linux.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
    c.linux.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
    // a cgroup v1 mount is not allowed in a user namespace; runtimes differ there, not the point here
    c.mounts = c.mounts.filter((m: { type: string }) => m.type !== 'cgroup');
  });
  // the mapped root must reach its rootfs
  chmodSync(s.dir, 0o755);
  chmodSync(b, 0o755);
  const { report } = await s.run(b);
  expect(report.uidMap.trim().split(/\s+/)).toEqual(['0', '200000', '65536']);
  expect(report.gidMap.trim().split(/\s+/)).toEqual(['0', '200000', '65536']);
  expect(report.ns.user).not.toBe(host.ns('user'));
  expect(report.uid).toBe(0);
});

req('L-SYSCTL', 'sysctl: the kernel parameters are set in the container', async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c.linux.sysctl = { 'kernel.shmmax': '4096000', 'net.ipv4.ip_forward': '1' };
      c.process.args = [
        '/checker',
        'report',
        '--file',
        '/proc/sys/kernel/shmmax',
        '--file',
        '/proc/sys/net/ipv4/ip_forward',
      ];
    }),
  );
  expect(report.files['/proc/sys/kernel/shmmax'].content.trim()).toBe('4096000');
  expect(report.files['/proc/sys/net/ipv4/ip_forward'].content.trim()).toBe('1');
});

req('L-SYSCTL-BAD', 'a sysctl that does not exist is an error', async () => {
  await createFails((c) => (c.linux.sysctl = { 'kernel.conformance_no_such_key': '1' }));
});

/** Creates a container with `edit` and runs `check(pid)` on the host while it waits in created. */
async function whileCreated(
  edit: (c: Config) => void,
  check: (pid: number, config: Config) => void | Promise<void>,
) {
  let config: Config = {};
  const b = s.bundle((c) => {
    edit(c);
    config = c;
  });
  const id = s.id();
  const r = await s.createLogged(id, b);
  expect(r.status, r.stderr).toBe(0);
  const pid = (await s.state(id))!.pid as number;
  try {
    await check(pid, config);
  } finally {
    await s.delete(id, true);
  }
}

function hostValue(pid: number, controller: string, v1: string, v2: string): string {
  const f = host.cgroupFile(pid, controller, v1, v2);
  expect(f, `no ${controller} controller for pid ${pid}`).toBeDefined();
  return readFileSync(f!, 'utf8').trim();
}

req(
  'L-CGPATH',
  'an absolute cgroupsPath is relative to the cgroup mount point: the process is there',
  async () => {
    await whileCreated(
      () => {},
      (pid, config) => {
        const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
        for (const controller of ['memory', 'pids']) {
          const line =
            lines.find((l) => l.split(':')[1]!.split(',').includes(controller)) ??
            lines.find((l) => l.startsWith('0::'));
          expect(line?.split(':').slice(2).join(':'), controller).toBe(config.linux.cgroupsPath);
        }
      },
    );
  },
);

req('L-RES-MEMORY', 'resources.memory.limit is the cgroup memory limit', async () => {
  await whileCreated(
    (c) => (c.linux.resources.memory = { limit: 64 * 1024 * 1024 }),
    (pid) => {
      expect(hostValue(pid, 'memory', 'memory.limit_in_bytes', 'memory.max')).toBe(String(64 * 1024 * 1024));
    },
  );
});

req('L-RES-PIDS', 'resources.pids.limit is the cgroup pids limit', async () => {
  await whileCreated(
    (c) => (c.linux.resources.pids = { limit: 77 }),
    (pid) => {
      expect(hostValue(pid, 'pids', 'pids.max', 'pids.max')).toBe('77');
    },
  );
});

req('L-RES-CPU', 'resources.cpu quota and period are the CFS bandwidth limit', async () => {
  await whileCreated(
    (c) => (c.linux.resources.cpu = { quota: 50000, period: 100000, shares: 512 }),
    (pid) => {
      const v2 = host.cgroupFile(pid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max')!;
      if (v2.endsWith('cpu.max')) {
        expect(readFileSync(v2, 'utf8').trim()).toBe('50000 100000');
      } else {
        expect(hostValue(pid, 'cpu', 'cpu.cfs_quota_us', '')).toBe('50000');
        expect(hostValue(pid, 'cpu', 'cpu.cfs_period_us', '')).toBe('100000');
        expect(hostValue(pid, 'cpu', 'cpu.shares', '')).toBe('512');
      }
    },
  );
});

req(
  'L-RES-DEVICES',
  'resources.devices: access to a device is denied or allowed as listed, in order',
  async () => {
    // the host's /dev/kmsg (1:11), bind-mounted: not a linux.devices entry (which runtimes allow on
    // their own) and in no runtime's default list; opened write-only, which needs no capability
    const kmsg = { destination: '/data/kmsg', type: 'bind', source: '/dev/kmsg', options: ['bind'] };
    const denied = await s.run(
      s.bundle((c) => {
        c.mounts.push(kmsg);
        c.process.args = ['/checker', 'report', '--openw', '/data/kmsg'];
      }),
    );
    expect(denied.report.actions['openw /data/kmsg']).toBe(1); // EPERM
    const allowed = await s.run(
      s.bundle((c) => {
        c.mounts.push(kmsg);
        c.linux.resources.devices.push({ allow: true, type: 'c', major: 1, minor: 11, access: 'w' });
        c.process.args = ['/checker', 'report', '--openw', '/data/kmsg'];
      }),
    );
    expect(allowed.report.actions['openw /data/kmsg']).toBe(0);
  },
);

req('L-RES-CONTROLLER', 'a resource of a controller that is not there is an error', async () => {
  await createFails((c) => (c.linux.resources.hugepageLimits = [{ pageSize: '3MB', limit: 1048576 }]));
});

const ARCHES = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];

req('L-SECCOMP', 'seccomp: the filter is in force; an ERRNO rule returns its errnoRet', async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c.linux.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ARCHES,
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 95 }],
      };
      c.process.args = ['/checker', 'report', '--mkdir', '/tmp/blocked'];
    }),
  );
  expect(report.seccomp).toBe('2');
  expect(report.actions['mkdir /tmp/blocked']).toBe(95);
});

req(
  'L-SECCOMP-DEFAULT-ERRNO',
  'seccomp: defaultErrnoRet is the errno of the default ERRNO action',
  async () => {
    const { report } = await s.run(
      s.bundle((c) => {
        // a filter for syscalls other than the checker's own: everything is allowed but sethostname
        c.linux.seccomp = {
          defaultAction: 'SCMP_ACT_ALLOW',
          architectures: ARCHES,
          syscalls: [{ names: ['sethostname'], action: 'SCMP_ACT_ERRNO' }],
        };
        c.process.args = ['/checker', 'report', '--sethostname', 'x'];
      }),
    );
    // SCMP_ACT_ERRNO without errnoRet is EPERM
    expect(report.actions['sethostname x']).toBe(1);
    const second = await s.run(
      s.bundle((c) => {
        c.linux.seccomp = {
          defaultAction: 'SCMP_ACT_ERRNO',
          defaultErrnoRet: 38,
          architectures: ARCHES,
          // everything the checker does, allowed; nothing else
          syscalls: [{ names: CHECKER_SYSCALLS, action: 'SCMP_ACT_ALLOW' }],
        };
        c.process.args = ['/checker', 'report', '--sethostname', 'x'];
      }),
    );
    expect(second.report.actions['sethostname x']).toBe(38);
  },
);

req('L-SECCOMP-BAD-ERRNO', 'seccomp: an errno on an action that has none is an error', async () => {
  await createFails((c) => {
    c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', defaultErrnoRet: 1, architectures: ARCHES };
  });
});

req('L-SECCOMP-LISTENER', 'seccomp: failing to send to listenerPath is an error', async () => {
  await createFails((c) => {
    c.linux.seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ARCHES,
      listenerPath: join(s.dir, 'no-such-listener.sock'),
      syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }],
    };
  });
});

req('L-TIMENS', 'timeOffsets: the time namespace shifts the clocks by the offsets', async () => {
  const day = 86400;
  const { report } = await s.run(
    s.bundle((c) => {
      c.linux.namespaces.push({ type: 'time' });
      c.linux.timeOffsets = { monotonic: { secs: 10 * day }, boottime: { secs: 20 * day } };
    }),
  );
  const [hostMono, hostBoot] = clocks();
  expect(Math.abs(report.monotonic - (hostMono + 10 * day))).toBeLessThan(120);
  expect(Math.abs(report.boottime - (hostBoot + 20 * day))).toBeLessThan(120);
  expect(report.ns.time).not.toBe(host.ns('time'));
});

req('L-PERSONALITY', 'personality LINUX32: uname shows a 32-bit machine', async () => {
  const { report } = await s.run(s.bundle((c) => (c.linux.personality = { domain: 'LINUX32' })));
  expect(report.machine).toMatch(/^i[3-6]86$/);
  expect(report.personality & 0xff).toBe(0x0008);
});

req(
  'L-INTELRDT',
  'intelRdt without a mounted resctrl is an error (with one: the pid is in its tasks)',
  async () => {
    const resctrl = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.includes(' - resctrl '));
    if (!resctrl) {
      await createFails((c) => (c.linux.intelRdt = { closID: 'conformance' }));
      return;
    }
    const dir = resctrl.split(' ')[4]!;
    // a closID with no schema names a pre-configured class: the runtime joins it, never makes it
    const closID = `conformance-${process.pid}`;
    mkdirSync(join(dir, closID));
    try {
      await whileCreated(
        (c) => (c.linux.intelRdt = { closID }),
        (pid) => {
          expect(readFileSync(join(dir, closID, 'tasks'), 'utf8').split('\n')).toContain(String(pid));
        },
      );
    } finally {
      rmdirSync(join(dir, closID));
    }
  },
);

/** CLOCK_MONOTONIC and CLOCK_BOOTTIME of the host, in seconds. */
function clocks(): [number, number] {
  // /proc/uptime is CLOCK_BOOTTIME; on a machine that never suspended, MONOTONIC is the same to the second
  const uptime = Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]));
  return [uptime, uptime];
}

// The syscalls the static checker makes (report mode), for the allow-list filter above.
const CHECKER_SYSCALLS = [
  'arch_prctl',
  'brk',
  'capget',
  'clock_gettime',
  'close',
  'execve',
  'exit',
  'exit_group',
  'fcntl',
  'fstat',
  'fstatfs',
  'futex',
  'getcwd',
  'getdents64',
  'getegid',
  'geteuid',
  'getgid',
  'getgroups',
  'getpid',
  'getppid',
  'getpriority',
  'getrandom',
  'getrlimit',
  'getuid',
  'ioctl',
  'ioprio_get',
  'lseek',
  'lstat',
  'mmap',
  'mprotect',
  'munmap',
  'newfstatat',
  'open',
  'openat',
  'personality',
  'prctl',
  'prlimit64',
  'read',
  'readlink',
  'readlinkat',
  'rseq',
  'rt_sigaction',
  'rt_sigprocmask',
  'rt_sigreturn',
  'sched_getscheduler',
  'set_robust_list',
  'set_tid_address',
  'stat',
  'statfs',
  'umask',
  'uname',
  'write',
  'writev',
];
