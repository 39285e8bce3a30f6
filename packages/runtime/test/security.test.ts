// Integration (root): seccomp, capabilities, LSMs, scheduler, I/O priority,
// personality and time namespaces, checked from inside real containers.
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cgroup } from '@berth/cgroups';
import { defaultSpec, formatSpec, type Spec } from '@berth/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { compileProfile, features, hostLsms, Runtime } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-security-test-'));
const root = join(dir, 'run');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const APPLETS = ['sh', 'sleep', 'echo', 'cat', 'grep', 'mkdir', 'uname', 'ionice', 'sync', 'true', 'ls'];
let serial = 0;
const used: string[] = [];
const uid = (name: string) => {
  const id = `sec-${name}-${process.pid}-${serial++}`;
  used.push(id);
  return id;
};

// nothing of any container is left: no cgroup (runtime's default cgroupsPath /berth/ID), no mount
afterAll(async () => {
  for (const id of used) {
    await expect(Cgroup.load(`/berth/${id}`)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  }
  expect(leftovers()).toEqual([]);
});

function bundle(script: string, edit: (spec: Spec) => void = () => {}): string {
  const b = mkdtempSync(join(dir, 'bundle-'));
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(b, 'rootfs', d), { recursive: true });
  copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(b, 'rootfs/bin', applet));
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = ['sh', '-c', script];
  edit(spec);
  writeFileSync(join(b, 'config.json'), formatSpec(spec));
  return b;
}

/** Runs the bundle in the foreground; returns its status and everything it printed. */
async function run(
  b: string,
  rt = new Runtime({ root, warn: () => {} }),
): Promise<{ status: number; out: string }> {
  const file = join(b, 'out.txt');
  const fd = openSync(file, 'w');
  let status: number;
  try {
    status = await rt.run(uid('run'), b, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
    await rt.close(); // the teardown run leaves under way
  }
  return { status, out: readFileSync(file, 'utf8') };
}

const mkdirErrno = (spec: Spec) => {
  spec.linux!.seccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 18 }],
  };
};

const leftovers = () =>
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter((l) => l.includes(dir));

/**
 * As runtime-tools' default profile: an allow list that names landlock (444-446), so the ENOSYS
 * stub does not apply, but not close_range, openat2 or faccessat2 (436, 437, 439); run as a user.
 */
const oldProfile = (spec: Spec) => {
  spec.process!.user = { uid: 1000, gid: 1000 };
  spec.linux!.seccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: ['close_range', 'openat2', 'faccessat2'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
      { names: ['landlock_create_ruleset'], action: 'SCMP_ACT_ALLOW' },
    ],
  };
};

describe('seccomp in a container', () => {
  it('is in force from the first instruction: Seccomp 2, and a rule returns its errnoRet', async () => {
    for (const nnp of [true, false]) {
      const b = bundle(
        'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; mkdir /tmp/d; echo "status $?"',
        (s) => {
          mkdirErrno(s);
          s.process!.noNewPrivileges = nnp;
        },
      );
      const { status, out } = await run(b);
      expect(status).toBe(0);
      expect(out).toMatch(/^Seccomp:\s+2$/m);
      expect(out).toMatch(new RegExp(`^NoNewPrivs:\\s+${nnp ? 1 : 0}$`, 'm'));
      expect(out).toMatch(/Invalid cross-device link/); // EXDEV = 18
      expect(out).toMatch(/^status 1$/m);
      expect(existsSync(join(b, 'rootfs/tmp/d'))).toBe(false);
    }
    expect(leftovers()).toEqual([]);
  });

  it('applies through create and start, and to processes exec’d later', async () => {
    const rt = new Runtime({ root, warn: () => {} });
    const id = uid('life');
    const b = bundle('sleep 30', mkdirErrno);
    await rt.create(id, b, { stdio: ['ignore', 'ignore', 'ignore'] });
    try {
      await rt.start(id);
      const file = join(b, 'exec.txt');
      const fd = openSync(file, 'w');
      try {
        const status = await rt.exec(
          id,
          {
            cwd: '/',
            args: ['sh', '-c', 'grep ^Seccomp: /proc/self/status; mkdir /tmp/e'],
            env: ['PATH=/bin'],
          },
          { stdio: ['ignore', fd, fd] },
        );
        expect(status).toBe(1);
      } finally {
        closeSync(fd);
      }
      const out = readFileSync(file, 'utf8');
      expect(out).toMatch(/^Seccomp:\s+2$/m);
      expect(out).toMatch(/Invalid cross-device link/);
    } finally {
      await rt.delete(id, { force: true });
    }
  });

  it("a profile that refuses the launcher's newer syscalls (EPERM) still runs, and no runtime fd passes exec", async () => {
    // without no_new_privs the filter is in force before the credentials change, as in runc
    for (const nnp of [false, true]) {
      const b = bundle('ls /proc/self/fd; echo done', (s) => {
        s.process!.noNewPrivileges = nnp;
        oldProfile(s);
      });
      const { status, out } = await run(b);
      expect(out).toMatch(/^done$/m);
      expect(status).toBe(0);
      // 0-2 are the container's stdio, 3 is ls's own directory: nothing of the launcher's
      expect(out.trim().split('\n').slice(0, -1)).toEqual(['0', '1', '2', '3']);
    }
    // and a process exec'd into such a container, which goes through the same last steps
    const rt = new Runtime({ root, warn: () => {} });
    const id = uid('old-profile');
    const b = bundle('sleep 30', (s) => {
      s.process!.noNewPrivileges = false;
      oldProfile(s);
    });
    await rt.create(id, b, { stdio: ['ignore', 'ignore', 'ignore'] });
    try {
      await rt.start(id);
      const file = join(b, 'exec.txt');
      const fd = openSync(file, 'w');
      let status: number;
      try {
        status = await rt.exec(
          id,
          { cwd: '/', args: ['ls', '/proc/self/fd'], env: ['PATH=/bin'], user: { uid: 1000, gid: 1000 } },
          { stdio: ['ignore', fd, fd] },
        );
      } finally {
        closeSync(fd);
      }
      expect(readFileSync(file, 'utf8').trim().split('\n')).toEqual(['0', '1', '2', '3']);
      expect(status).toBe(0);
    } finally {
      await rt.delete(id, { force: true });
      await rt.close();
    }
  });

  it('KILL_PROCESS really kills (SIGSYS)', async () => {
    const b = bundle('echo before; sync; echo "child $?"; exec sync; echo after', (s) => {
      s.linux!.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['sync'], action: 'SCMP_ACT_KILL_PROCESS' }],
      };
    });
    const { status, out } = await run(b);
    expect(status).toBe(128 + 31);
    expect(out).toContain('before');
    expect(out).toMatch(/^child 159$/m);
    expect(out).not.toContain('after');
  });

  it('NOTIFY: the listener fd and the container process state reach the agent at listenerPath', async () => {
    const agentBin = join(dir, 'seccomp-agent');
    const cc = spawnSync(process.env['CC'] ?? 'cc', [
      '-O2',
      '-o',
      agentBin,
      fileURLToPath(new URL('../../sys/test/fixtures/seccomp-agent.c', import.meta.url)),
    ]);
    expect(cc.status, cc.stderr?.toString()).toBe(0);
    const socketPath = join(dir, `agent-${process.pid}.sock`);
    const agent = spawn(agentBin, [socketPath, '18'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let agentOut = '';
    const listening = new Promise<void>((resolve) =>
      agent.stdout.on('data', (d: Buffer) => {
        agentOut += d.toString();
        if (agentOut.includes('listening')) resolve();
      }),
    );
    const done = new Promise<number>((resolve) => agent.on('close', (code) => resolve(code ?? -1)));
    try {
      await listening;
      const b = bundle('mkdir /tmp/n; echo "status $?"', (s) => {
        s.annotations = { 'org.example.test': 'notify' };
        s.linux!.seccomp = {
          defaultAction: 'SCMP_ACT_ALLOW',
          listenerPath: socketPath,
          listenerMetadata: 'berth-test-metadata',
          syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }],
        };
      });
      const { status, out } = await run(b);
      expect(status).toBe(0);
      expect(out).toMatch(/Invalid cross-device link/); // the agent's answer
      expect(await done).toBe(0);
      const stateLine = agentOut.split('\n').find((l) => l.startsWith('state '));
      const msg = JSON.parse(stateLine!.slice(6));
      expect(msg).toMatchObject({
        ociVersion: '1.2.0',
        fds: ['seccompFd'],
        metadata: 'berth-test-metadata',
        state: { status: 'creating', bundle: b, annotations: { 'org.example.test': 'notify' } },
      });
      expect(msg.pid).toBeGreaterThan(1);
      expect(msg.state.pid).toBe(msg.pid);
      expect(msg.state.id).toMatch(/^sec-run-/);
      expect(agentOut).toMatch(/^notify \d+$/m);
    } finally {
      agent.kill('SIGKILL');
    }
  });

  it('a profile libseccomp refuses fails create, naming the field, and leaves nothing', async () => {
    const rt = new Runtime({ root, warn: () => {} });
    const id = uid('bad');
    const b = bundle('true', (s) => {
      s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_LOONGARCH64'] };
    });
    const hasLoongarch = (await features()).linux?.seccomp?.archs?.includes('SCMP_ARCH_LOONGARCH64');
    if (hasLoongarch) {
      // a newer libseccomp knows it: then the container must run
      expect((await run(b, rt)).status).toBe(0);
    } else {
      await expect(rt.create(id, b)).rejects.toThrow(
        /^linux\.seccomp\.architectures\[0\]: SCMP_ARCH_LOONGARCH64 is not supported/,
      );
    }
    expect(await rt.list()).toEqual([]);
  });
});

describe('compileProfile', () => {
  it('keeps compiled profiles in a private cache, and trusts only files nobody else can write', async () => {
    const cache = join(dir, 'seccomp-cache');
    const profile = {
      defaultAction: 'SCMP_ACT_ALLOW' as const,
      syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' as const, errnoRet: 18 }],
    };
    const first = await compileProfile(profile, cache);
    const files = readdirSync(cache).filter((n) => n.endsWith('.json'));
    expect(files).toHaveLength(1);
    expect(statSync(join(cache, files[0]!)).mode & 0o777).toBe(0o600);
    // the cache is what is used: a private file, changed, is read back as it is
    const file = join(cache, files[0]!);
    const forged = JSON.parse(readFileSync(file, 'utf8'));
    forged.bpf = Buffer.alloc(8).toString('base64');
    writeFileSync(file, JSON.stringify(forged), { mode: 0o600 });
    expect((await compileProfile(profile, cache))?.bpf).toEqual(Buffer.alloc(8));
    // a file others could have written is ignored (and replaced)
    chmodSync(file, 0o620);
    expect((await compileProfile(profile, cache))?.bpf.equals(first!.bpf)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await compileProfile(undefined, cache)).toBeUndefined();
  });

  it("root's cache is root's own: never under a HOME or XDG_CACHE_HOME a user gave it (sudo -E), nor through a link", async () => {
    const profile = {
      defaultAction: 'SCMP_ACT_ALLOW' as const,
      syscalls: [{ names: ['rmdir'], action: 'SCMP_ACT_ERRNO' as const, errnoRet: 21 }],
    };
    // a user's home: the cache directory there is the user's, and so would be any file in it
    const userHome = join(dir, 'sudo-user-home');
    mkdirSync(join(userHome, '.cache', 'berth', 'seccomp'), { recursive: true });
    const saved = { HOME: process.env['HOME'], XDG: process.env['XDG_CACHE_HOME'] };
    process.env['HOME'] = userHome;
    process.env['XDG_CACHE_HOME'] = join(userHome, '.cache');
    try {
      expect(await compileProfile(profile)).toBeDefined();
    } finally {
      for (const [k, v] of [
        ['HOME', saved.HOME],
        ['XDG_CACHE_HOME', saved.XDG],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
    expect(readdirSync(join(userHome, '.cache', 'berth', 'seccomp'))).toEqual([]);
    const own = join(userInfo().homedir, '.cache', 'berth', 'seccomp');
    expect(readdirSync(own).some((n) => n.endsWith('.json'))).toBe(true);
    // a cache directory that is a link, or that others can write, gets nothing
    const victim = join(dir, 'victim-dir');
    mkdirSync(victim, { mode: 0o700 });
    const link = join(dir, 'seccomp-link');
    symlinkSync(victim, link);
    expect(await compileProfile(profile, link)).toBeDefined();
    expect(readdirSync(victim)).toEqual([]);
    const open = join(dir, 'seccomp-open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(await compileProfile(profile, open)).toBeDefined();
    expect(readdirSync(open)).toEqual([]);
  });
});

describe('capabilities and the rest of process and linux', () => {
  it('a missing process.capabilities means no capability at all (as runc)', async () => {
    const b = bundle('grep -E "^Cap(Eff|Prm|Bnd|Inh|Amb):" /proc/self/status', (s) => {
      delete s.process!.capabilities;
      s.process!.noNewPrivileges = false;
    });
    const { status, out } = await run(b);
    expect(status).toBe(0);
    for (const set of ['CapEff', 'CapPrm', 'CapBnd', 'CapInh', 'CapAmb'])
      expect(out).toMatch(new RegExp(`^${set}:\\s+0{16}$`, 'm'));
  });

  it('applies scheduler, ioPriority and personality', async () => {
    const b = bundle(
      'read -r l < /proc/$$/stat; set -- $l; shift 40; echo "policy $1"; ionice -p $$; uname -m',
      (s) => {
        s.process!.scheduler = { policy: 'SCHED_BATCH', nice: 5 };
        s.process!.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 6 };
        s.linux!.personality = { domain: 'LINUX32' };
      },
    );
    const { status, out } = await run(b);
    expect(status, out).toBe(0);
    expect(out).toMatch(/^policy 3$/m); // SCHED_BATCH
    expect(out).toMatch(/best-effort: prio 6/);
    if (process.arch === 'x64') expect(out).toMatch(/^i686$/m);
  });

  it('applies linux.memoryPolicy to the container and to processes exec’d into it; execCPUAffinity to exec', async () => {
    // the host's own first memory node and last cpu (any host has node 0 and cpu 0; read, not assumed)
    const node = readFileSync('/sys/devices/system/node/online', 'utf8').trim().split(/[,-]/)[0]!;
    const online = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
    const last = online.split(/[,-]/).pop()!;
    const rt = new Runtime({ root, warn: () => {} });
    const id = uid('mpol');
    const b = bundle('grep -m1 -o "bind:[0-9,-]*" /proc/self/numa_maps; sleep 30', (s) => {
      s.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: node };
    });
    const file = join(b, 'out.txt');
    const fd = openSync(file, 'w');
    await rt.create(id, b, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    try {
      await rt.start(id);
      const efd = openSync(join(b, 'exec.txt'), 'w');
      try {
        const status = await rt.exec(
          id,
          {
            cwd: '/',
            args: [
              'sh',
              '-c',
              'grep -m1 -o "bind:[0-9,-]*" /proc/self/numa_maps; grep Cpus_allowed_list /proc/self/status',
            ],
            env: ['PATH=/bin'],
            execCPUAffinity: { initial: '0', final: last },
          },
          { stdio: ['ignore', efd, efd] },
        );
        expect(status).toBe(0);
      } finally {
        closeSync(efd);
      }
      const exec = readFileSync(join(b, 'exec.txt'), 'utf8');
      expect(exec).toMatch(new RegExp(`^bind:${node}$`, 'm'));
      expect(exec).toMatch(new RegExp(`^Cpus_allowed_list:\\s+${last}$`, 'm'));
      for (let i = 0; i < 50 && !readFileSync(file, 'utf8'); i++) await new Promise((r) => setTimeout(r, 20));
      expect(readFileSync(file, 'utf8')).toMatch(new RegExp(`^bind:${node}$`, 'm'));
    } finally {
      await rt.delete(id, { force: true });
    }
  });

  it('a memory policy or CPU list the kernel cannot take is an error naming the field, and leaves nothing', async () => {
    const rt = new Runtime({ root, warn: () => {} });
    const cases: Array<[(s: Spec) => void, RegExp]> = [
      [
        (s) => (s.linux!.memoryPolicy = { mode: 'MPOL_BIND' }),
        /^linux\.memoryPolicy\.nodes: MPOL_BIND needs at least one node/,
      ],
      [
        (s) => (s.linux!.memoryPolicy = { mode: 'MPOL_LOCAL', nodes: '0' }),
        /^linux\.memoryPolicy\.nodes: MPOL_LOCAL takes no nodes/,
      ],
      [(s) => (s.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: '1023' }), /set_mempolicy: EINVAL/],
      [
        (s) => (s.linux!.memoryPolicy = { mode: 'MPOL_BIND', nodes: '4096' }),
        /^linux\.memoryPolicy\.nodes: 4096 is out of range/,
      ],
    ];
    for (const [edit, error] of cases) {
      const id = uid('mpol-bad');
      await expect(
        rt.create(id, bundle('true', edit), { stdio: ['ignore', 'ignore', 'ignore'] }),
      ).rejects.toThrow(error);
    }
    const id = uid('aff-bad');
    await rt.create(id, bundle('sleep 30'), { stdio: ['ignore', 'ignore', 'ignore'] });
    try {
      await rt.start(id);
      const proc = { cwd: '/', args: ['true'], env: ['PATH=/bin'] };
      await expect(
        rt.exec(
          id,
          { ...proc, execCPUAffinity: { final: '3-1' } },
          { stdio: ['ignore', 'ignore', 'ignore'] },
        ),
      ).rejects.toThrow(/^process\.execCPUAffinity\.final: "3-1" is not a number or a range/);
      await expect(
        rt.exec(
          id,
          { ...proc, execCPUAffinity: { initial: '8191' } },
          { stdio: ['ignore', 'ignore', 'ignore'] },
        ),
      ).rejects.toThrow(/sched_setaffinity: EINVAL/);
    } finally {
      await rt.delete(id, { force: true });
    }
    expect(
      (await rt.list()).filter((c) => c.id.startsWith('sec-mpol-bad') || c.id.startsWith('sec-aff-bad')),
    ).toEqual([]);
  });

  it('a new time namespace gets linux.timeOffsets', async () => {
    const b = bundle('cat /proc/self/timens_offsets; cat /proc/uptime', (s) => {
      s.linux!.namespaces!.push({ type: 'time' });
      s.linux!.timeOffsets = { boottime: { secs: 86400 * 365, nanosecs: 0 }, monotonic: { secs: 7200 } };
    });
    const { status, out } = await run(b);
    expect(status, out).toBe(0);
    expect(out).toMatch(/^monotonic\s+7200\s+0$/m);
    expect(out).toMatch(/^boottime\s+31536000\s+0$/m);
    const uptime = Number(
      out
        .split('\n')
        .find((l) => /^\d+\.\d+ /.test(l))!
        .split(' ')[0],
    );
    expect(uptime).toBeGreaterThan(86400 * 365);
  });

  it('timeOffsets without a time namespace is an error naming the field', async () => {
    const rt = new Runtime({ root, warn: () => {} });
    const b = bundle('true', (s) => {
      s.linux!.timeOffsets = { monotonic: { secs: 1 } };
    });
    await expect(rt.create(uid('tno'), b)).rejects.toThrow(/^linux\.timeOffsets: needs a new time namespace/);
    expect(await rt.list()).toEqual([]);
  });

  it('an LSM label the host cannot apply, or Intel RDT without resctrl, fails naming the field', async () => {
    const rt = new Runtime({ root, warn: () => {} });
    const lsms = hostLsms();
    if (!lsms.apparmor) {
      const b = bundle('true', (s) => {
        s.process!.apparmorProfile = 'berth-test-profile';
      });
      await expect(rt.create(uid('aa'), b)).rejects.toThrow(
        /^process\.apparmorProfile: AppArmor is not enabled/,
      );
    }
    if (!lsms.selinux) {
      const b = bundle('true', (s) => {
        s.process!.selinuxLabel = 'system_u:system_r:container_t:s0';
      });
      await expect(rt.create(uid('se'), b)).rejects.toThrow(/^process\.selinuxLabel: SELinux is disabled/);
      // runc drops a mount label where SELinux is off: the container runs
      const m = bundle('true', (s) => {
        s.linux!.mountLabel = 'system_u:object_r:container_file_t:s0';
      });
      expect((await run(m, rt)).status).toBe(0);
    }
    const r = bundle('true', (s) => {
      s.linux!.intelRdt = { closID: 'berth-test' };
    });
    await expect(rt.create(uid('rdt'), r)).rejects.toThrow(/^linux\.intelRdt: /);
    expect(await rt.list()).toEqual([]);
    expect(leftovers()).toEqual([]);
  });
});
