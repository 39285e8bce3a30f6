// Integration: the VM backend (@berth/vm) behind the runtime's lifecycle, with a real
// QEMU microVM (TCG where /dev/kvm is missing), the distribution kernel and the static
// guest agent (root; scripts/setup.sh installs qemu-system-x86 and musl-tools and
// fetches the kernel).
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec, formatSpec, type Spec } from '@berth/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-vm-test-'));
const root = join(dir, 'run');
const suffix = `${process.pid}-${Date.now().toString(36)}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const APPLETS = ['sh', 'sleep', 'echo', 'cat', 'grep', 'nproc', 'head', 'hostname', 'uname', 'read'];

function bundle(args: string[], edit?: (spec: Spec) => void): string {
  const b = mkdtempSync(join(dir, 'bundle-'));
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(b, 'rootfs', d), { recursive: true });
  copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(b, 'rootfs/bin', applet));
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  spec.annotations = { 'org.berth.backend': 'vm' };
  edit?.(spec);
  writeFileSync(join(b, 'config.json'), formatSpec(spec));
  return b;
}

/** Every QEMU process whose command line names this test's directory. */
function qemus(): string[] {
  try {
    return execFileSync('pgrep', ['-af', 'qemu-system'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(dir));
  } catch {
    return []; // pgrep: no match
  }
}

/**
 * A hostile process in the guest (root, CAP_SYS_PTRACE, the agent's pid namespace): copies
 * the agent's fds on the berth.status port and the console with pidfd_getfd and floods them.
 */
const HOSTILE_C = `#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
/* the agent's fd whose /proc/1/fd link ends with want */
static int agent_fd(const char *want) {
  DIR *d = opendir("/proc/1/fd");
  struct dirent *e;
  int found = -1;
  while (d && (e = readdir(d))) {
    char p[300], l[300] = {0};
    snprintf(p, sizeof p, "/proc/1/fd/%s", e->d_name);
    size_t n = strlen(want);
    if (readlink(p, l, sizeof l - 1) > 0 && strlen(l) >= n && !strcmp(l + strlen(l) - n, want)) found = atoi(e->d_name);
  }
  if (found < 0) { fprintf(stderr, "no agent fd on %s\\n", want); exit(1); }
  int pidfd = syscall(SYS_pidfd_open, 1, 0);
  int fd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, found, 0);
  if (fd < 0) { perror("pidfd_getfd"); exit(1); }
  return fd;
}
static void out(int fd, const char *b, size_t n) {
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) { usleep(1000); continue; }
    if (w < 0) { perror("write"); exit(1); }
    b += w; n -= (size_t)w;
  }
}
int main(void) {
  static char buf[1 << 20];
  char dev[64] = "", p[300];
  DIR *d = opendir("/sys/class/virtio-ports");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char name[64] = {0};
    snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
    int f = open(p, O_RDONLY);
    if (f >= 0 && read(f, name, sizeof name - 1) > 0 && !strcmp(name, "berth.status\\n")) snprintf(dev, sizeof dev, "/%s", e->d_name);
    if (f >= 0) close(f);
  }
  if (!dev[0]) { fprintf(stderr, "no berth.status port\\n"); return 1; }
  int status = agent_fd(dev), console = agent_fd("/dev/console");
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = i % 128 == 127 ? '\\n' : 'A';
  out(console, buf, sizeof buf);
  for (int i = 0; i < 64; i++) out(status, buf, sizeof buf);
  /* last: berth-vmm gives a guest that reported its exit 10 s to power off */
  out(status, "exit 0\\n", 7);
  return 0;
}
`;

/**
 * A hostile process in the guest that takes the agent's place on berth.ctl: it stops the
 * agent (ptrace), copies its fd on the port (pidfd_getfd), and answers the host's first
 * command with 16 MiB and no newline, the next ones not at all.
 */
const HIJACK_C = `#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
  static char buf[1 << 20];
  char dev[64] = "", p[300], l[300];
  DIR *d = opendir("/sys/class/virtio-ports");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char name[64] = {0};
    snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
    int f = open(p, O_RDONLY);
    if (f >= 0 && read(f, name, sizeof name - 1) > 0 && !strcmp(name, "berth.ctl\\n")) snprintf(dev, sizeof dev, "/%s", e->d_name);
    if (f >= 0) close(f);
  }
  int found = -1;
  d = opendir("/proc/1/fd");
  while (dev[0] && d && (e = readdir(d))) {
    memset(l, 0, sizeof l);
    snprintf(p, sizeof p, "/proc/1/fd/%s", e->d_name);
    if (readlink(p, l, sizeof l - 1) > 0 && strlen(l) >= strlen(dev) && !strcmp(l + strlen(l) - strlen(dev), dev)) found = atoi(e->d_name);
  }
  if (found < 0) { fprintf(stderr, "no agent fd on berth.ctl\\n"); return 1; }
  int pidfd = syscall(SYS_pidfd_open, 1, 0);
  int fd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, found, 0);
  if (fd < 0) { perror("pidfd_getfd"); return 1; }
  if (ptrace(PTRACE_SEIZE, 1, 0, 0) < 0 || ptrace(PTRACE_INTERRUPT, 1, 0, 0) < 0) { perror("ptrace"); return 1; }
  waitpid(1, NULL, __WALL);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  close(open("/hijacked", O_WRONLY | O_CREAT, 0644));
  memset(buf, 'B', sizeof buf);
  for (int n = 0;; n++) {
    char cmd[256];
    if (read(fd, cmd, sizeof cmd) <= 0) { usleep(100000); continue; }
    for (int i = 0; n == 0 && i < 16; i++)
      for (size_t off = 0; off < sizeof buf;) { ssize_t w = write(fd, buf + off, sizeof buf - off); if (w > 0) off += w; else if (errno != EINTR && errno != EAGAIN) break; }
  }
}
`;

// TCG guests on a host whose two cores run other tests' VMs too can be slow (not stuck)
const VM_TESTS = { timeout: 900_000 };

describe('the VM backend', VM_TESTS, () => {
  it('runs a bundle in a microVM: stdout, stdin, exit status, a file in the rootfs, size from linux.resources', async () => {
    const rt = new Runtime({ root });
    const b = bundle(
      [
        'sh',
        '-c',
        'read line; echo "read: $line"; echo "kernel $(uname -r)"; grep MemTotal /proc/meminfo; echo "cpus $(nproc)"; echo written > /from-guest; exit 7',
      ],
      (spec) => {
        spec.root!.readonly = false;
        spec.linux!.resources = {
          memory: { limit: 160 * 1024 * 1024 },
          cpu: { quota: 150_000, period: 100_000 },
        };
      },
    );
    writeFileSync(join(dir, 'in.txt'), 'hello from the host\n');
    const input = openSync(join(dir, 'in.txt'), 'r');
    const output = openSync(join(dir, 'out.txt'), 'w');
    let code: number;
    try {
      code = await rt.run(`vm-run-${suffix}`, b, { stdio: [input, output, 'inherit'] });
    } finally {
      closeSync(input);
      closeSync(output);
    }
    const out = readFileSync(join(dir, 'out.txt'), 'utf8');
    expect(code).toBe(7);
    expect(out).toContain('read: hello from the host\n');
    // its own kernel: not the host's
    const kernel = /kernel (\S+)/.exec(out)?.[1];
    expect(kernel).toBeTruthy();
    expect(kernel).not.toBe(execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim());
    // 150 ms of CPU per 100 ms: 2 vCPUs; 160 MiB plus the guest's 64 MiB, less what the kernel keeps
    expect(out).toContain('cpus 2\n');
    const memKiB = Number(/MemTotal:\s+(\d+) kB/.exec(out)?.[1]);
    expect(memKiB).toBeGreaterThan(160 * 1024);
    expect(memKiB).toBeLessThanOrEqual(224 * 1024);
    expect(readFileSync(join(b, 'rootfs/from-guest'), 'utf8')).toBe('written\n');
    expect(await rt.list()).toEqual([]);
    expect(qemus()).toEqual([]);
  });

  it('goes through created, running, paused and stopped; exec and kill reach the guest; delete leaves nothing', async () => {
    const rt = new Runtime({ root });
    const id = `vm-life-${suffix}`;
    const b = bundle(
      [
        'sh',
        '-c',
        'trap "echo got TERM; exit 42" TERM; echo up; i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.1; done',
      ],
      (spec) => {
        spec.root!.readonly = false;
      },
    );
    const count = async (): Promise<number> => {
      for (;;) {
        const n = Number(readFileSync(join(b, 'rootfs/count'), 'utf8').trim() || 'NaN');
        if (!Number.isNaN(n)) return n;
        await new Promise((r) => setTimeout(r, 20)); // read between the truncate and the write
      }
    };
    const counting = async (): Promise<void> => {
      const first = await count();
      for (let i = 0; i < 600 && (await count()) === first; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await count()).toBeGreaterThan(first);
    };
    const output = openSync(join(dir, 'life.txt'), 'w');
    try {
      const created = await rt.create(id, b, { stdio: ['ignore', output, output] });
      expect(created.status).toBe('created');
      expect(created.pid).toBeGreaterThan(0);
      // the container's pid on the host is QEMU's
      expect(readFileSync(`/proc/${created.pid}/cmdline`, 'utf8')).toContain('qemu-system');
      const runDir = join(root, id, 'vm');
      expect(existsSync(join(runDir, 'ctl.sock'))).toBe(true);
      await rt.start(id);
      expect((await rt.state(id)).status).toBe('running');

      const execOut = openSync(join(dir, 'exec.txt'), 'w');
      let execCode: number;
      try {
        execCode = await rt.exec(
          id,
          { args: ['sh', '-c', 'echo "exec in $(hostname)"; exit 5'], cwd: '/', env: ['PATH=/bin'] },
          { stdio: ['ignore', execOut, 'inherit'] },
        );
      } finally {
        closeSync(execOut);
      }
      expect(execCode).toBe(5);
      expect(readFileSync(join(dir, 'exec.txt'), 'utf8')).toBe('exec in runc\n');

      // pause: QEMU's vCPUs stop (QMP stop), the guest's loop with them; resume: it goes on
      while (!existsSync(join(b, 'rootfs/count'))) await new Promise((r) => setTimeout(r, 50));
      await counting();
      await rt.pause(id);
      expect((await rt.state(id)).status).toBe('paused');
      const { openVm } = await import('@berth/vm');
      const record = rt.store.read(id);
      expect(await openVm(id, record.vm as import('@berth/vm').VmRecord).paused()).toBe(true);
      const frozen = await count();
      await new Promise((r) => setTimeout(r, 1500));
      expect(await count()).toBe(frozen);
      await expect(rt.pause(id)).rejects.toThrow(/cannot pause container .*: it is paused/);
      await expect(rt.kill(id, 15)).rejects.toThrow(/it is paused .*resume it first/);
      // update moves only the balloon (memory.limit): other fields are refused by name, nothing changed
      await expect(
        rt.update(id, { memory: { limit: 64 * 1024 * 1024 }, cpu: { quota: 50_000 } }),
      ).rejects.toThrow(
        /updates only linux\.resources\.memory\.limit \(the balloon\), not linux\.resources\.cpu\.quota:/,
      );
      await rt.resume(id);
      expect((await rt.state(id)).status).toBe('running');
      await expect(rt.resume(id)).rejects.toThrow(/cannot resume container .*: it is running/);
      await counting();

      await rt.kill(id, 15);
      for (let i = 0; i < 300 && (await rt.state(id)).status !== 'stopped'; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect((await rt.state(id)).status).toBe('stopped');
      expect(readFileSync(join(dir, 'life.txt'), 'utf8')).toBe('up\ngot TERM\n');
      await rt.delete(id);
      await expect(rt.state(id)).rejects.toMatchObject({ code: 'ENOTFOUND' });
      expect(existsSync(join(root, id))).toBe(false);
      expect(qemus()).toEqual([]);
    } finally {
      closeSync(output);
      await rt.delete(id, { force: true }).catch(() => {});
    }
  });

  it('delete --force stops a running (here: paused) VM: no QEMU, socket or state is left', async () => {
    const rt = new Runtime({ root });
    const id = `vm-force-${suffix}`;
    const b = bundle(['sleep', '600']);
    await rt.create(id, b, { stdio: ['ignore', 'ignore', 'ignore'] });
    const pid = (await rt.state(id)).pid;
    await rt.start(id);
    await rt.pause(id);
    await expect(rt.delete(id)).rejects.toThrow(/that is not stopped: paused/);
    await rt.delete(id, { force: true });
    expect(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')).toBe(
      false,
    );
    expect(existsSync(join(root, id))).toBe(false);
    expect(qemus()).toEqual([]);
  });

  it('a guest that floods the status port and the console: bounded host files, a fast and truthful state, kill and delete work', async () => {
    // root in the guest with CAP_SYS_PTRACE and no pid namespace takes the agent's own fds
    // on the status port and the console (pidfd_getfd), as a replaced agent or a hostile
    // guest kernel could write there: 1 MiB on the serial console, then 64 MiB of
    // nonsense and a false "exit 0" on the status port
    const tool = join(dir, 'hostile');
    writeFileSync(`${tool}.c`, HOSTILE_C);
    execFileSync('musl-gcc', ['-static', '-O2', '-o', tool, `${tool}.c`]);
    const rt = new Runtime({ root });
    const id = `vm-flood-${suffix}`;
    const b = bundle(['sh', '-c', 'hostile && echo done > /done; exec sleep 600'], (spec) => {
      spec.root!.readonly = false;
      spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== 'pid');
      const caps = spec.process!.capabilities!;
      for (const set of ['bounding', 'effective', 'permitted'] as const)
        caps[set] = [...(caps[set] ?? []), 'CAP_SYS_PTRACE'];
    });
    copyFileSync(tool, join(b, 'rootfs/bin/hostile'));
    try {
      await rt.create(id, b, { stdio: ['ignore', 'ignore', 'ignore'] });
      const pid = (await rt.state(id)).pid;
      await rt.start(id);
      for (let i = 0; i < 6000 && !existsSync(join(b, 'rootfs/done')); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(join(b, 'rootfs/done'))).toBe(true);
      const runDir = join(root, id, 'vm');
      const size = (name: string) => (existsSync(join(runDir, name)) ? statSync(join(runDir, name)).size : 0);
      // the host keeps the guest's parsed state, not what it wrote
      expect(size('status')).toBeLessThan(4096);
      expect(size('console.log') + size('console.log.1')).toBeLessThanOrEqual(512 * 1024);
      expect(size('console.log.1')).toBe(256 * 1024); // the console was flooded, and moved aside
      expect(size('qemu.log')).toBeLessThan(256 * 1024 + 100);
      // the VM runs: state says so, at once, whatever the guest claimed
      const t0 = Date.now();
      const state = await rt.state(id);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(state.status).toBe('running');
      expect(state.pid).toBe(pid);
      await rt.kill(id, 9);
      for (let i = 0; i < 600 && (await rt.state(id)).status !== 'stopped'; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect((await rt.state(id)).status).toBe('stopped');
      await rt.delete(id);
      expect(existsSync(join(root, id))).toBe(false);
      expect(qemus()).toEqual([]);
    } finally {
      await rt.delete(id, { force: true }).catch(() => {});
    }
  });

  it('a guest that answers the control channel with a flood, then not at all: kill fails fast with bounded memory, SIGKILL and delete still end the VM', async () => {
    const tool = join(dir, 'hijack');
    writeFileSync(`${tool}.c`, HIJACK_C);
    execFileSync('musl-gcc', ['-static', '-O2', '-o', tool, `${tool}.c`]);
    const rt = new Runtime({ root });
    const id = `vm-hijack-${suffix}`;
    const b = bundle(['sh', '-c', 'hijack; exec sleep 600'], (spec) => {
      spec.root!.readonly = false;
      spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== 'pid');
      const caps = spec.process!.capabilities!;
      for (const set of ['bounding', 'effective', 'permitted'] as const)
        caps[set] = [...(caps[set] ?? []), 'CAP_SYS_PTRACE'];
    });
    copyFileSync(tool, join(b, 'rootfs/bin/hijack'));
    try {
      await rt.create(id, b, { stdio: ['ignore', 'ignore', 'ignore'] });
      const pid = (await rt.state(id)).pid;
      await rt.start(id);
      for (let i = 0; i < 6000 && !existsSync(join(b, 'rootfs/hijacked')); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(join(b, 'rootfs/hijacked'))).toBe(true);
      const rss0 = process.memoryUsage().rss;
      let t0 = Date.now();
      await expect(rt.kill(id, 15)).rejects.toThrow(/longer than 64 bytes|did not answer/);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(process.memoryUsage().rss - rss0).toBeLessThan(32 << 20);
      expect((await rt.state(id)).status).toBe('running');
      // SIGKILL needs no agent: the host stops the VM, berth-vmm exits as a SIGKILLed process
      t0 = Date.now();
      await rt.kill(id, 9);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect((await rt.state(id)).status).toBe('stopped');
      expect(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')).toBe(
        false,
      );
      await rt.delete(id);
      expect(existsSync(join(root, id))).toBe(false);
      expect(qemus()).toEqual([]);
    } finally {
      await rt.delete(id, { force: true }).catch(() => {});
    }
  });

  it("puts berth-vmm and QEMU in the container's cgroup with its limits: a busy guest stays within a 0.2 CPU quota; delete removes the cgroup", async () => {
    const { Cgroup } = await import('@berth/cgroups');
    const rt = new Runtime({ root });
    const id = `vm-cg-${suffix}`;
    const cgroupsPath = `/berth-vmtest-${suffix}`;
    const b = bundle(['sh', '-c', 'while :; do :; done'], (spec) => {
      spec.linux!.cgroupsPath = cgroupsPath;
      spec.linux!.resources = {
        ...spec.linux!.resources,
        cpu: { quota: 20_000, period: 100_000 },
        memory: { limit: 128 * 1024 * 1024 },
        pids: { limit: 200 },
      };
    });
    const cpuTicks = (pid: number): number => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      return Number(rest[11]) + Number(rest[12]); // utime + stime, every thread's
    };
    try {
      await rt.create(id, b, { stdio: ['ignore', 'ignore', 'ignore'] });
      const vmm = (await rt.state(id)).pid;
      const qemu = Number(readFileSync(`/proc/${vmm}/task/${vmm}/children`, 'utf8').trim());
      const cg = await Cgroup.find(cgroupsPath);
      expect(cg).toBeDefined();
      // berth-vmm and QEMU (all its threads: they are one process) are the cgroup's processes
      expect((await cg!.pids()).sort()).toEqual([vmm, qemu].sort());
      for (const line of readFileSync(`/proc/${qemu}/cgroup`, 'utf8').trim().split('\n')) {
        if (/^\d+:(cpu|memory|pids)[,:]/.test(line)) expect(line).toMatch(new RegExp(`:${cgroupsPath}$`));
      }
      // the memory limit holds the guest (128 + 64 MiB) and QEMU's own share
      const { hostMemoryLimit, VMM_OVERHEAD_MIB } = await import('@berth/vm');
      const record = rt.store.read(id);
      expect(hostMemoryLimit(record.vm!.size as import('@berth/vm').VmSize)).toBe(
        (128 + 64 + VMM_OVERHEAD_MIB) * 1024 * 1024,
      );
      const stats = (await rt.stats(id)) as {
        memory?: { usage?: { limit?: number } };
        pids?: { limit?: number };
      };
      expect(stats.memory?.usage?.limit).toBe((128 + 64 + VMM_OVERHEAD_MIB) * 1024 * 1024);
      expect(stats.pids?.limit).toBe(200);
      await rt.start(id);
      await new Promise((r) => setTimeout(r, 3000)); // the guest's loop runs
      const hz = 100;
      const t0 = Date.now();
      const c0 = cpuTicks(qemu);
      await new Promise((r) => setTimeout(r, 6000));
      const used = (cpuTicks(qemu) - c0) / hz / ((Date.now() - t0) / 1000);
      // 0.2 CPU (unbounded, the emulated vCPU takes a whole host CPU)
      console.log(`QEMU under a 0.2 CPU quota: ${used.toFixed(3)} CPU`);
      expect(used).toBeLessThan(0.3);
      expect(used).toBeGreaterThan(0.05);
      await rt.kill(id, 9);
      for (let i = 0; i < 600 && (await rt.state(id)).status !== 'stopped'; i++)
        await new Promise((r) => setTimeout(r, 50));
      await rt.delete(id);
      expect(await Cgroup.find(cgroupsPath)).toBeUndefined();
      expect(existsSync(join(root, id))).toBe(false);
      expect(qemus()).toEqual([]);
    } finally {
      await rt.delete(id, { force: true }).catch(() => {});
    }
  });

  it('refuses what a VM cannot honour, naming it, and leaves nothing behind', async () => {
    const rt = new Runtime({ root });
    const id = `vm-bad-${suffix}`;
    const device = bundle(['true'], (spec) => {
      spec.mounts!.push({ destination: '/null', type: 'bind', source: '/dev/null', options: ['rbind'] });
    });
    await expect(rt.create(id, device)).rejects.toThrow(
      /mounts\[\d+\]\.source: \/dev\/null is a character device: only regular files and directories/,
    );
    // a plan step that fails in the guest is reported as on the host: the step, the errno
    const readonly = bundle(['true'], (spec) => {
      spec.mounts!.push({ destination: '/host', type: 'bind', source: '/etc', options: ['rbind', 'ro'] });
    });
    await expect(rt.create(id, readonly, { stdio: ['ignore', 'ignore', 'ignore'] })).rejects.toThrow(
      /create directory \/host: EROFS/,
    );
    const small = bundle(['true'], (spec) => {
      spec.linux!.resources = { memory: { limit: 16 * 1024 * 1024 } };
    });
    await expect(rt.create(id, small)).rejects.toMatchObject({ code: 'EVMSIZE' });
    const wrong = bundle(['true'], (spec) => {
      spec.annotations = { 'org.berth.backend': 'kvm' };
    });
    await expect(rt.create(id, wrong)).rejects.toThrow(/annotations\["org.berth.backend"\]: "kvm"/);
    expect(existsSync(join(root, id))).toBe(false);
    expect(qemus()).toEqual([]);
  });
});
