// Integration (root): `berth features`, and seccomp for `berth run IMAGE`
// (the default profile, --security-opt seccomp=unconfined|FILE).
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { defaultSeccomp } from '../src/seccomp-profile.js';
import { Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => {
  sb.cleanup();
  expect(existsSync(sb.dir)).toBe(false);
});

describe('berth features', () => {
  it('prints the runtime-spec features document', () => {
    const r = sb.berth(['features']);
    expect(r.status, r.stderr).toBe(0);
    const f = JSON.parse(r.stdout);
    expect(f.ociVersionMin).toBe('1.0.0');
    expect(f.ociVersionMax).toMatch(/^1\.\d+\.\d+$/);
    expect(f.hooks).toEqual([
      'prestart',
      'createRuntime',
      'createContainer',
      'startContainer',
      'poststart',
      'poststop',
    ]);
    expect(f.mountOptions).toEqual(
      expect.arrayContaining(['rbind', 'ro', 'nosuid', 'rprivate', 'tmpcopyup']),
    );
    expect(f.mountOptions).toEqual(expect.arrayContaining(['idmap', 'ridmap'])); // idmapped bind mounts
    expect(f.linux.mountExtensions).toEqual({ idmap: { enabled: true } });
    expect(f.linux.namespaces).toEqual(
      expect.arrayContaining(['mount', 'pid', 'network', 'ipc', 'uts', 'cgroup', 'user']),
    );
    expect(f.linux.capabilities).toContain('CAP_SYS_ADMIN');
    expect(f.linux.cgroup).toMatchObject({ v1: true, v2: true });
    // applied where resctrl is mounted (elsewhere linux.intelRdt is an error naming the field)
    expect(f.linux.intelRdt).toMatchObject({ enabled: true });
    const s = f.linux.seccomp;
    expect(s.enabled).toBe(true);
    expect(s.actions).toEqual(
      expect.arrayContaining(['SCMP_ACT_ERRNO', 'SCMP_ACT_NOTIFY', 'SCMP_ACT_KILL_PROCESS']),
    );
    expect(s.operators).toHaveLength(7);
    expect(s.archs).toContain(process.arch === 'arm64' ? 'SCMP_ARCH_AARCH64' : 'SCMP_ARCH_X86_64');
    expect(s.knownFlags).toContain('SECCOMP_FILTER_FLAG_LOG');
    expect(f.annotations['io.github.seccomp.libseccomp.version']).toMatch(/^2\.\d+\.\d+$/);
  });
});

describe('seccomp for berth run IMAGE', () => {
  it('applies the default profile: filter mode, allowed syscalls work, others fail with EPERM', () => {
    const r = sb.berth([
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'grep "^Seccomp:" /proc/self/status; mkdir /tmp/ok && echo mkdir-ok; swapoff /nothing; echo "swapoff $?"',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Seccomp:\s+2$/m);
    expect(r.stdout).toMatch(/^mkdir-ok$/m);
    // swapoff is in no allow rule: the default action's EPERM
    expect(r.stdout).toMatch(/^swapoff 1$/m);
    expect(r.stderr).toMatch(/swapoff: \/nothing: Operation not permitted/);
  });

  it("a syscall newer than every one the profile names gets ENOSYS, not the default's EPERM (runc's stub)", () => {
    // what glibc falls back on (fchmodat2 → fchmodat, clone3 → clone): an EPERM would break it
    const src = join(sb.dir, 'nosys.c');
    writeFileSync(
      src,
      [
        '#include <errno.h>',
        '#include <stdio.h>',
        '#include <unistd.h>',
        '#include <sys/syscall.h>',
        'int main(void) {',
        '  long r = syscall(1000, 0, 0, 0);',
        '  printf("new %ld %d\\n", r, errno);',
        '  errno = 0;',
        '  r = syscall(SYS_swapoff, "/nothing");',
        '  printf("swapoff %ld %d\\n", r, errno);',
        '  return 0;',
        '}',
      ].join('\n'),
    );
    const b = sb.bundle((c) => {
      c.process.args = ['/nosys'];
      // the default profile as `berth run IMAGE` gives it (Docker's format resolved for these capabilities)
      c.linux.seccomp = defaultSeccomp(c.process.capabilities.bounding);
    });
    execFileSync('gcc', ['-static', '-O1', '-o', join(b, 'rootfs', 'nosys'), src]);
    const r = sb.berth(['run', '-b', b, sb.id('nosys')]);
    expect(r.stderr).toBe('');
    // ENOSYS (38) for the unknown number; a syscall the profile knows and does not allow: EPERM (1)
    expect(r.stdout).toBe('new -1 38\nswapoff -1 1\n');
  });

  it('--security-opt seccomp=unconfined runs without a filter', () => {
    const r = sb.berth([
      'run',
      '--rm',
      '--security-opt',
      'seccomp=unconfined',
      'busybox',
      'grep',
      '^Seccomp:',
      '/proc/self/status',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Seccomp:\s+0$/m);
  });

  it('--security-opt seccomp=FILE takes an OCI or a Docker-format profile, defaultErrnoRet included', () => {
    const oci = join(sb.dir, 'oci-profile.json');
    // deny-by-default would stop busybox itself: allow all but mkdir, which gets defaultErrnoRet's EXDEV
    writeFileSync(
      oci,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 18 }],
      }),
    );
    const a = sb.berth(['run', '--rm', '--security-opt', `seccomp=${oci}`, 'busybox', 'mkdir', '/tmp/x']);
    expect(a.status).toBe(1);
    expect(a.stderr).toMatch(/can't create directory '\/tmp\/x': Invalid cross-device link/);

    const docker = join(sb.dir, 'docker-profile.json');
    writeFileSync(
      docker,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 18,
        archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }],
        syscalls: [
          // everything busybox needs to start and print, but not mkdir
          {
            names: [
              'execve', 'brk', 'arch_prctl', 'set_tid_address', 'set_robust_list', 'rseq', 'prlimit64',
              'mprotect', 'getrandom', 'getpid', 'getppid', 'getuid', 'geteuid', 'getgid', 'getegid',
              'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'write', 'writev', 'read', 'exit', 'exit_group',
              'ioctl', 'fcntl', 'close', 'openat', 'newfstatat', 'fstat', 'mmap', 'munmap', 'uname',
              'readlink', 'getcwd', 'stat', 'lstat', 'access', 'faccessat2', 'umask', 'chdir', 'dup2',
              'close_range', 'setsid', 'setresuid', 'setresgid', 'setgroups', 'capget', 'capset', 'prctl',
              'sendto', 'sendmsg', 'poll', 'fchdir', 'open', 'statx', 'lseek', 'futex', 'madvise',
            ], // biome-ignore format: a word list
            action: 'SCMP_ACT_ALLOW',
          },
          { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_MODULE'] } },
        ],
      }),
    );
    const b = sb.berth(['run', '--rm', '--security-opt', `seccomp=${docker}`, 'busybox', 'mkdir', '/tmp/y']);
    expect(b.status, b.stderr).toBe(1);
    expect(b.stderr).toMatch(/can't create directory '\/tmp\/y': Invalid cross-device link/); // defaultErrnoRet, and the CAP_SYS_MODULE rule left out
  });

  it('an unknown --security-opt is refused in one line', () => {
    const r = sb.berth(['run', '--rm', '--security-opt', 'no-such-option', 'busybox', 'true']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--security-opt no-such-option: berth supports seccomp=/);
  });

  it('--security-opt apparmor=PROFILE asks for the profile: an error where AppArmor is off, nothing left behind', () => {
    const enabled = existsSync('/sys/kernel/security/apparmor');
    const r = sb.berth([
      'run',
      '--rm',
      '--security-opt',
      'apparmor=berth-no-such-profile',
      'busybox',
      'true',
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(
      enabled ? /berth-no-such-profile/ : /process\.apparmorProfile: AppArmor is not enabled on this host/,
    );
    expect(sb.berth(['list', '--format', 'json']).stdout.trim()).toBe('[]');
  });
});

describe('user id 4294967295', () => {
  // (uid_t)-1 is "leave unchanged" to setresuid(2) and setresgid(2): a process asked to run as it
  // stayed root, with root's capabilities, while a "runs as non-root" policy saw a non-zero uid
  it('is no user: refused from an image, from config.json and for exec, before anything runs', () => {
    const image = sb.berth(['run', '--rm', '-u', '4294967295', 'busybox', 'id']);
    expect(image.status).toBe(1);
    expect(image.stderr).toContain('uid 4294967295 is not a user or group id (the largest is 4294967294');
    const bundle = sb.bundle((c) => {
      c.process.user.uid = 4294967295;
      c.process.args = ['id'];
    });
    const run = sb.berth(['run', '-b', bundle, sb.id('uid')]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('process.user.uid: must be an integer between 0 and 4294967294');
    expect(run.stdout).toBe('');
    const id = sb.id('uidx');
    expect(
      sb.detached(['run', '-d', '-b', sb.bundle((c) => (c.process.args = ['sleep', '60'])), id]).status,
    ).toBe(0);
    try {
      for (const user of ['4294967295', '0:4294967295']) {
        const exec = sb.berth(['exec', '--user', user, id, 'id']);
        expect(exec.stderr).toContain('--user: 4294967295 is not a user or group id');
        expect(exec.stdout).toBe('');
      }
      // 4294967294 is a user like any other: no capabilities, no root
      const ok = sb.berth([
        'exec',
        '--user',
        '4294967294:4294967294',
        id,
        'sh',
        '-c',
        'id -u; grep CapEff /proc/self/status',
      ]);
      expect(ok.stdout).toContain('4294967294\nCapEff:\t0000000000000000');
    } finally {
      sb.berth(['delete', '--force', id]);
    }
    expect(sb.states()).toEqual([]);
  });
});
