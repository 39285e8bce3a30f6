// Integration: compiles real profiles with libseccomp and loads them with the real launcher (root).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  CLONE_NEWPID,
  CLONE_NEWUTS,
  closeFd,
  compileSeccomp,
  launch,
  type PlanStep,
  type SeccompProfile,
  sendFdToSocket,
  takeProcessFd,
} from '../src/index.js';
import { sh, testDir } from './helpers.js';

const dir = testDir('berth-seccomp-test-');

/** Runs `script` under the profile in a new pid+uts namespace; returns status and output. */
async function runUnder(
  profile: SeccompProfile,
  script: string,
  extra: { nnp?: boolean; onSeccompListener?: (pid: number, fd: number) => Promise<void> } = {},
): Promise<{ status: number; out: string }> {
  const c = await compileSeccomp(profile);
  const steps: PlanStep[] = [
    { op: 'clone', flags: CLONE_NEWPID | CLONE_NEWUTS, detach: false },
    ...(extra.nnp ? [{ op: 'noNewPrivs' } as PlanStep] : []),
    { op: 'seccomp', bpf: c.bpf, flags: c.flags, notify: c.notify },
    sh(script),
  ];
  const l = launch(steps, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(extra.onSeccompListener ? { onSeccompListener: extra.onSeccompListener } : {}),
  });
  let out = '';
  l.process.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  l.process.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await l.expect('pid');
  await l.expect('eof');
  const status = await l.exited;
  return { status, out };
}

const allow = (rules: SeccompProfile['syscalls']): SeccompProfile => ({
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: rules ?? [],
});

describe('compileSeccomp', () => {
  it('makes a BPF program and the filter flags', async () => {
    const c = await compileSeccomp({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 38,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64'],
      flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_TSYNC'],
      syscalls: [{ names: ['read', 'write', 'exit_group'], action: 'SCMP_ACT_ALLOW' }],
    });
    expect(c.bpf.length % 8).toBe(0);
    expect(c.bpf.length).toBeGreaterThan(8 * 5);
    expect(c.flags).toBe(2 | 4); // LOG | SPEC_ALLOW; TSYNC means nothing to a single thread
    expect(c.notify).toBe(false);
    // no flags at all: SPEC_ALLOW, as runc and Docker; an empty list is no flag
    const base = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }],
    };
    expect((await compileSeccomp(base)).flags).toBe(4);
    expect((await compileSeccomp({ ...base, flags: [] })).flags).toBe(0);
  });

  it('accepts every action, operator and the NOTIFY listener flag', async () => {
    const ops = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT'];
    const c = await compileSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
      syscalls: [
        { names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 5 },
        { names: ['rmdir'], action: 'SCMP_ACT_TRACE', errnoRet: 7 },
        { names: ['uname'], action: 'SCMP_ACT_LOG' },
        { names: ['getppid'], action: 'SCMP_ACT_KILL' },
        { names: ['getpgid'], action: 'SCMP_ACT_KILL_THREAD' },
        { names: ['getsid'], action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['sync'], action: 'SCMP_ACT_TRAP' },
        { names: ['acct'], action: 'SCMP_ACT_NOTIFY' },
        ...ops.map((op, i) => ({
          names: ['personality'],
          action: 'SCMP_ACT_ERRNO' as const,
          args: [{ index: 0, value: i + 1, op }],
        })),
        {
          names: ['clone'],
          action: 'SCMP_ACT_ERRNO',
          args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
        },
        // the same argument twice: one rule per comparison, as runc
        {
          names: ['kill'],
          action: 'SCMP_ACT_ERRNO',
          args: [
            { index: 1, value: 0, op: 'SCMP_CMP_EQ' },
            { index: 1, value: 64, op: 'SCMP_CMP_GT' },
          ],
        },
      ],
    });
    expect(c.notify).toBe(true);
    expect(c.flags).toBe(32 | 8); // WAIT_KILLABLE_RECV | NEW_LISTENER
  });

  it("prepends runc's ENOSYS stub where the default refuses, after the largest syscall the profile names", async () => {
    const insns = (b: Buffer) =>
      Array.from({ length: b.length / 8 }, (_, i) => ({
        code: b.readUInt16LE(i * 8),
        jt: b[i * 8 + 2],
        jf: b[i * 8 + 3],
        k: b.readUInt32LE(i * 8 + 4),
      }));
    const strict = await compileSeccomp({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [{ names: ['read', 'write', 'exit_group'], action: 'SCMP_ACT_ALLOW' }],
    });
    const p = insns(strict.bpf);
    if (process.arch === 'x64') {
      expect(p.slice(0, 6)).toEqual([
        { code: 0x20, jt: 0, jf: 0, k: 4 }, // the architecture
        { code: 0x15, jt: 0, jf: 4, k: 0xc000003e }, // x86-64, else the filter
        { code: 0x20, jt: 0, jf: 0, k: 0 }, // the syscall number
        { code: 0x45, jt: 2, jf: 0, k: 0x40000000 }, // x32: the filter
        { code: 0x25, jt: 0, jf: 1, k: 231 }, // above exit_group (231): ENOSYS
        { code: 0x06, jt: 0, jf: 0, k: 0x00050000 | 38 },
      ]);
    }
    // a default that lets calls through gets no stub (runc's rule): the program is libseccomp's
    const open = await compileSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }],
    });
    expect(insns(open.bpf).some((x) => x.code === 0x06 && x.k === (0x00050000 | 38))).toBe(false);
  });

  it('names the field libseccomp cannot honour', async () => {
    await expect(
      compileSeccomp({
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_VAX'],
      }),
    ).rejects.toThrow(/^linux\.seccomp\.architectures\[1\]: SCMP_ARCH_VAX is not supported/);
    await expect(
      compileSeccomp(allow([{ names: ['mkdir', 'no_such_syscall_x'], action: 'SCMP_ACT_ERRNO' }])),
    ).rejects.toThrow(/^linux\.seccomp\.syscalls\[0\]\.names\[1\]: .*"no_such_syscall_x".*would allow it/);
    await expect(compileSeccomp({ defaultAction: 'SCMP_ACT_NOTIFY' })).rejects.toThrow(
      /^linux\.seccomp\.defaultAction: SCMP_ACT_NOTIFY cannot be the default/,
    );
    await expect(compileSeccomp(allow([{ names: ['write'], action: 'SCMP_ACT_NOTIFY' }]))).rejects.toThrow(
      /names\[0\]: SCMP_ACT_NOTIFY cannot be used for the write syscall/,
    );
    await expect(
      compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] }),
    ).rejects.toThrow(/^linux\.seccomp\.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs/);
  });

  it('leaves out an unknown syscall only where that cannot allow more (as runc)', async () => {
    const c = await compileSeccomp({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [{ names: ['read', 'no_such_syscall_y'], action: 'SCMP_ACT_ALLOW' }],
    });
    expect(c.skipped).toEqual(['no_such_syscall_y']);
  });
});

describe('the seccomp step', () => {
  it('puts the process in filter mode, and an ERRNO rule returns its errnoRet', async () => {
    // EXDEV (18): "Invalid cross-device link", nothing mkdir would ever say by itself
    const profile = allow([{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 18 }]);
    const d = join(dir, 'made-by-mkdir');
    const r = await runUnder(profile, `grep '^Seccomp:' /proc/self/status; mkdir ${d}; echo "status $?"`);
    expect(r.out).toMatch(/^Seccomp:\s+2$/m);
    expect(r.out).toMatch(/Invalid cross-device link/);
    expect(r.out).toMatch(/^status 1$/m);
    expect(existsSync(d)).toBe(false);
  });

  it('also loads after no_new_privs', async () => {
    const profile = allow([{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 18 }]);
    const r = await runUnder(profile, `grep '^NoNewPrivs:' /proc/self/status; mkdir ${dir}/x2`, {
      nnp: true,
    });
    expect(r.out).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(r.out).toMatch(/Invalid cross-device link/);
  });

  it('uses defaultErrnoRet for everything not allowed', async () => {
    const r = await runUnder(
      allow([{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }]),
      `mkdir ${dir}/x3`,
    );
    expect(r.out).toMatch(/Operation not permitted/); // EPERM when errnoRet is not given, as runc
  });

  it('compares arguments', async () => {
    // kill(pid, 0) fails with EACCES (13); kill(pid, SIGCONT) is allowed
    const profile = allow([
      {
        names: ['kill'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: 13,
        args: [{ index: 1, value: 0, op: 'SCMP_CMP_EQ' }],
      },
    ]);
    const r = await runUnder(profile, 'kill -0 $$; echo "zero $?"; kill -CONT $$; echo "cont $?"');
    expect(r.out).toMatch(/^zero 1$/m);
    expect(r.out).toMatch(/Permission denied/);
    expect(r.out).toMatch(/^cont 0$/m);
  });

  it('KILL_PROCESS kills the process with SIGSYS', async () => {
    const r = await runUnder(allow([{ names: ['uname'], action: 'SCMP_ACT_KILL_PROCESS' }]), 'exec uname -a');
    expect(r.status).toBe(128 + 31);
    const t = await runUnder(allow([{ names: ['uname'], action: 'SCMP_ACT_KILL' }]), 'exec uname -a');
    expect(t.status).toBe(128 + 31);
  });

  it('NOTIFY: the listener fd reaches the agent, which answers the syscall', async () => {
    const agentBin = join(dir, 'seccomp-agent');
    const cc = spawnSync(process.env['CC'] ?? 'cc', [
      '-O2',
      '-o',
      agentBin,
      fileURLToPath(new URL('fixtures/seccomp-agent.c', import.meta.url)),
    ]);
    expect(cc.status, cc.stderr?.toString()).toBe(0);
    const socketPath = join(dir, 'agent.sock');
    // the agent answers every notified syscall with EXDEV (18)
    const agent = spawn(agentBin, [socketPath, '18'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let agentOut = '';
    const listening = new Promise<void>((resolve) =>
      agent.stdout.on('data', (d: Buffer) => {
        agentOut += d.toString();
        if (agentOut.includes('listening')) resolve();
      }),
    );
    const agentDone = new Promise<number>((resolve) => agent.on('close', (code) => resolve(code ?? -1)));
    try {
      await listening;
      let seenPid = 0;
      const r = await runUnder(
        allow([{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }]),
        `mkdir ${dir}/x4; echo "status $?"`,
        {
          onSeccompListener: async (pid, fd) => {
            seenPid = pid;
            const copy = await takeProcessFd(pid, fd);
            try {
              await sendFdToSocket(socketPath, copy, JSON.stringify({ fds: ['seccompFd'], pid }));
            } finally {
              await closeFd(copy);
            }
          },
        },
      );
      expect(r.out).toMatch(/Invalid cross-device link/);
      expect(r.out).toMatch(/^status 1$/m);
      expect(await agentDone).toBe(0);
      expect(agentOut).toContain(`state {"fds":["seccompFd"],"pid":${seenPid}}`);
      expect(agentOut).toMatch(/^notify (83|258)$/m); // mkdir or mkdirat on x86_64
      expect(existsSync(join(dir, 'x4'))).toBe(false);
    } finally {
      agent.kill('SIGKILL');
    }
  });

  it('a NOTIFY filter with nobody to take its fd stops the process', async () => {
    const c = await compileSeccomp(allow([{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }]));
    const l = launch(
      [
        { op: 'clone', flags: CLONE_NEWUTS, detach: false },
        { op: 'seccomp', bpf: c.bpf, flags: c.flags, notify: true },
        sh('echo ran'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await l.expect('pid');
    await expect(l.expect('eof')).rejects.toThrow(/SCMP_ACT_NOTIFY filter needs a listener/);
    expect(await l.exited).not.toBe(0);
  });
});
