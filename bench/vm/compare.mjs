// Generates docs/guides/containers-and-vms.md: the seed's comparison of containers and
// virtual machines, for the same bundle on this machine, from measurements: start time
// (bench/vm/run.sh's round-robin timings), memory per instance, size on disk, whether the
// kernel is shared, and the isolation boundary.
// usage: node bench/vm/compare.mjs HYPERFINE_JSON BUNDLE
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  chooseAccel,
  DEFAULT_KERNEL_DIR,
  DEFAULT_SIZE,
  ensureKernel,
  findQemu,
  guestBinaries,
  vmCacheDir,
} from '@berth/vm';

const [resultsFile, bundleArg] = process.argv.slice(2);
const results = JSON.parse(readFileSync(resultsFile, 'utf8')).results;
const byName = Object.fromEntries(results.map((r) => [r.command, r]));
const cli = resolve('apps/berth/dist/cli.cjs');
const work = mkdtempSync(join(tmpdir(), 'berth-vm-compare-'));
const root = join(work, 'state');

function berth(...args) {
  // create: the container (or QEMU) keeps its stdio: not a pipe this call would wait on
  const quiet = args[0] === 'create';
  return execFileSync(process.execPath, [cli, '--root', root, ...args], {
    encoding: 'utf8',
    stdio: quiet ? ['ignore', 'ignore', 'ignore'] : ['ignore', 'pipe', 'pipe'],
  });
}

/** Disk usage of a tree in bytes (apparent sizes). */
function du(path) {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, e) => n + du(join(path, e)), 0);
}

/** Proportional set size of a process and its descendants, in KiB. */
function pss(pid) {
  let total = 0;
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  total += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const children = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
    for (const c of children ? children.split(' ') : []) total += pss(Number(c));
  }
  return total;
}

/** Pss of a process's (and its descendants') mappings of files whose name ends with `suffix`, in KiB. */
function filePss(pid, suffix) {
  let total = 0;
  let match = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) match = line.trim().endsWith(suffix);
    else if (match && line.startsWith('Pss:')) total += Number(line.split(/\s+/)[1]);
  }
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const children = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
    for (const c of children ? children.split(' ') : []) total += filePss(Number(c), suffix);
  }
  return total;
}

let kernelPss = 0;

/** Memory of one running instance (`sleep`), measured on the host. */
function memoryOf(backend) {
  const b = join(work, `bundle-${backend}`);
  cpSync(bundleArg, b, { recursive: true, verbatimSymlinks: true });
  symlink(b);
  const config = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
  config.process.args = ['/bin/sleep', '60'];
  config.annotations = { 'org.berth.backend': backend };
  writeFileSync(join(b, 'config.json'), JSON.stringify(config));
  const id = `compare-${backend}-${process.pid}`;
  berth('create', '-b', b, id);
  try {
    berth('start', id);
    execFileSync('sleep', ['1']);
    const pid = JSON.parse(berth('state', id)).pid;
    if (backend === 'vm') kernelPss = filePss(pid, '/vmlinux');
    return pss(pid);
  } finally {
    berth('delete', '--force', id);
  }
}

function symlink(b) {
  try {
    execFileSync('ln', ['-sf', 'busybox', join(b, 'rootfs/bin/sleep')]);
  } catch {
    // there already
  }
}

const mem = { container: memoryOf('container'), vm: memoryOf('vm') };
const kernel = ensureKernel({ dir: DEFAULT_KERNEL_DIR });
const bins = guestBinaries(join(vmCacheDir(), 'bin'));
const rootfsBytes = du(join(bundleArg, 'rootfs'));
const kernelBytes = du(kernel.kernel) + kernel.modules.reduce((n, m) => n + du(m.path), 0);
const agentBytes = du(bins.agent) + du(bins.launcher);
rmSync(work, { recursive: true, force: true });

const s = (r) =>
  `${(r.mean * 1000).toFixed(0)} ms ± ${(r.stddev * 1000).toFixed(0)} (median ${(r.median * 1000).toFixed(0)} ms)`;
const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const accel = chooseAccel(undefined, findQemu());
const ratio = byName.vm && byName['bare-qemu'] ? byName.vm.median / byName['bare-qemu'].median : undefined;
const hostKernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
// what a NIC on a bridge costs, when bench/vm/network.sh has run
let nic = '';
try {
  const n = Object.fromEntries(
    JSON.parse(readFileSync('bench/results/vm-network.json', 'utf8')).results.map((r) => [r.command, r]),
  );
  const d = n['vm-none'].times.map((t, i) => n['vm-bridge'].times[i] - t).sort((a, b) => a - b);
  nic = `\nA NIC on a bridge (\`sudo bash bench/vm/network.sh\`, ${d.length} runs, round-robin, \`true\` in busybox): ${s(n['vm-none'])} with \`--network none\`, ${s(n['vm-bridge'])} with \`--network bridge\`; median of the per-round differences ${(d[Math.floor(d.length / 2)] * 1000).toFixed(0)} ms.\n`;
} catch {
  // not measured
}
const page = `# Containers and virtual machines, measured

<!-- generated by bench/vm/compare.mjs (sudo bash bench/vm/run.sh); do not edit by hand -->

berth runs the same OCI bundle two ways: as a **container** (namespaces and cgroups on
the host's kernel) or, with \`--backend vm\` or the annotation \`org.berth.backend: vm\`, as
a **microVM** (QEMU \`microvm\` with its own kernel; the same launcher plan runs inside it).
The numbers below were measured on the machine that generated this page
(${new Date().toISOString().slice(0, 10)}, ${cpus().length} CPUs, host kernel ${hostKernel}, accelerator
**${accel.accel}**${accel.accel === 'tcg' ? ` — ${accel.reason}: QEMU emulates the CPU, so the VM column is far slower than it would be with KVM` : ''}).
The workload is \`/bin/true\` (start time) and \`sleep\` (memory) in a busybox bundle.

| | container | VM |
| --- | --- | --- |
| start to exit (\`berth run\`, ${results[0]?.times?.length ?? '?'} runs) | ${byName.container ? s(byName.container) : 'n/a'} | ${byName.vm ? s(byName.vm) : 'n/a'} |
| memory per instance (Pss on the host) | ${(mem.container / 1024).toFixed(1)} MiB | ${(mem.vm / 1024).toFixed(1)} MiB (guest RAM ${DEFAULT_SIZE.memoryMiB} MiB, ${DEFAULT_SIZE.vcpus} vCPU; of this, ${(kernelPss / 1024).toFixed(1)} MiB is the kernel image QEMU maps, page cache every VM shares) |
| size on disk | ${mib(rootfsBytes)} (the rootfs) | ${mib(rootfsBytes + kernelBytes + agentBytes)} (rootfs + guest kernel ${mib(kernelBytes)} + agent ${mib(agentBytes)}) |
| kernel | shared with the host (${hostKernel}) | its own (${kernel.version}, ${kernel.source}) |
| isolation boundary | the host kernel's namespaces, cgroups, capabilities and seccomp: a kernel bug is a way out | a hypervisor: the container's kernel is not the host's; QEMU (seccomp-sandboxed) and the virtio devices are the surface |

Bare QEMU with the same kernel, initramfs and command line (no berth): ${byName['bare-qemu'] ? s(byName['bare-qemu']) : 'n/a'}.
berth's VM start costs **${ratio ? ratio.toFixed(2) : 'n/a'}x** bare QEMU (ratio of medians; goal: at most 1.15x).

Reproduce: \`sudo bash bench/vm/run.sh [RUNS]\` (results in bench/results/vm.json).
${nic}
## What each side supports

| | container | VM |
| --- | --- | --- |
| terminal | \`-t\` in the foreground; \`--console-socket\` gets the pty master | the same: the guest's pty is relayed over virtio-serial to a host pty whose master goes to \`--console-socket\` (podman \`-t\` works) |
| pause / resume | the cgroup freezer | QEMU stops the vCPUs (QMP \`stop\` / \`cont\`); \`state\` says \`paused\`; a paused VM is only signalled after \`resume\` (or removed by \`delete --force\`) |
| update | cgroup limits, live | \`memory.limit\` only: a virtio-balloon target set over QMP (the guest keeps the limit plus 64 MiB for its kernel; its MemTotal shrinks), up to the memory it booted with; anything else (vCPUs: no CPU hotplug on microvm) is refused by name |
| stats | the cgroup's counters | not yet (no host cgroup holds QEMU) |
| network | bridge, none, host, a namespace path, CNI | bridge and named networks: a tap on the bridge (QEMU's virtio-net), an address from the same IPAM set by the agent, resolv.conf/hosts/hostname, \`-p\` by the same DNAT rules; none: no NIC; host, a namespace path and CNI are refused (a VM cannot share a host namespace) |

## A cgroup v2 host for berth's own tests

berth also uses the VM backend to test itself: a host whose cgroups are v1 or hybrid cannot
exercise the cgroup v2 code. \`packages/vm/test/cgroup-v2-host.test.ts\` (part of \`npm test\`)
boots a guest whose kernel has only a cgroup2 hierarchy with every controller, shares the
host's root filesystem into it read-only over 9p (tmpfs on \`/tmp\`, \`/run\`, \`/var/tmp\` and
\`/root\` in the guest), runs \`@berth/cgroups\`' real-kernel tests and the CLI's limit tests
there with vitest, and asserts the guest's pass counts on the host.
`;
writeFileSync('docs/guides/containers-and-vms.md', page);
process.stdout.write(page);
