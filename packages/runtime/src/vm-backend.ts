/**
 * The VM backend behind the runtime's lifecycle: the same bundle, its plan run
 * by the berth launcher inside a QEMU microVM (@berth/vm) instead of on the
 * host kernel. Selected by `org.berth.backend: vm` in config.json or by
 * `--backend vm`. The runtime keeps one state.json per container as always;
 * its `pid` is QEMU's, so tools that watch the container's process (conmon,
 * containerd's shim) watch the VM.
 */
import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  fstatSync,
  openSync,
  readSync,
  realpathSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { JOIN_ORDER, NAMESPACES, type NamespaceKind } from '@berth/namespaces';
import type { Process, Spec } from '@berth/spec';
import { BerthError, type PlanStep, removeTree } from '@berth/sys';
import type { VmNet, VmRecord } from '@berth/vm';
import {
  attachedRecord,
  attachSettings,
  type ContainerNetworkOptions,
  checkNetworkOptions,
  detachNetwork,
  networkRecordBase,
} from './network.js';
import { planContainer, planProcess, processEnv, SYNC_NS_READY, terminalStep } from './plan.js';
import type { Stdio } from './runtime.js';
import { compileProfile } from './security.js';
import type { ContainerRecord, StateStore, Status } from './state.js';

/** The annotation that selects the backend (`@berth/vm`'s BACKEND_ANNOTATION, without loading it). */
export const BACKEND_ANNOTATION = 'org.berth.backend';

export type Backend = 'container' | 'vm';

async function vm(): Promise<typeof import('@berth/vm')> {
  return import('@berth/vm');
}

/** Whether a container runs in a VM: `--backend` wins, else the annotation; any other value is an error. */
export async function wantsVm(spec: Spec, flag: Backend | undefined): Promise<boolean> {
  if (flag === undefined && spec.annotations?.[BACKEND_ANNOTATION] === undefined) return false;
  return (await vm()).selectBackend(spec.annotations, flag) === 'vm';
}

/** Settings a VM cannot honour are errors, not silently dropped. */
function checkSpec(
  spec: Spec,
  options: { consoleSocket?: string; preserveFds?: number; network?: ContainerNetworkOptions },
): void {
  const no = (what: string) =>
    new BerthError(`${what} is not supported by the VM backend yet`, { code: 'EUNSUPPORTED' });
  if (options.consoleSocket && spec.process?.terminal !== true)
    throw new BerthError(
      '--console-socket: process.terminal is not true: there is no terminal to hand over',
      {
        code: 'EINVALIDSPEC',
      },
    );
  if (options.preserveFds) throw no('--preserve-fds');
  if (spec.hooks?.prestart?.length || spec.hooks?.createRuntime?.length)
    throw no('hooks.prestart / hooks.createRuntime');
  for (const [i, n] of (spec.linux?.namespaces ?? []).entries()) {
    if (n.path && n.type !== 'network')
      throw no(`linux.namespaces[${i}]: joining the host namespace ${n.path}`);
  }
  if (!spec.linux?.namespaces?.some((n) => n.type === 'network')) {
    throw new BerthError(
      'linux.namespaces: no "network" namespace means the host\'s network, which a VM cannot share (it has a kernel of its own): add {"type": "network"} (berth run: --network none or bridge)',
      { code: 'EUNSUPPORTED' },
    );
  }
  if (Object.keys(spec.linux?.netDevices ?? {}).length)
    throw no('linux.netDevices (a host network device cannot be moved into a VM)');
  const network = options.network?.network;
  if (network?.startsWith('cni:'))
    throw no(`--network ${network}: CNI plugins attach a network namespace on the host`);
}

/**
 * The config as the guest sees it: a network namespace the caller made on the
 * host (podman and containerd pass its path) cannot be joined from a VM; the
 * container gets a new, empty one in the guest instead (only lo: no way out),
 * and a warning says so.
 */
export function guestSpec(spec: Spec, warnings: string[], nic = false): Spec {
  const namespaces = spec.linux?.namespaces;
  if (nic && namespaces) {
    // the VM's NIC is in the guest's own network namespace, and so is the container: the VM
    // is its network boundary (a namespace of its own there would have only lo)
    return { ...spec, linux: { ...spec.linux, namespaces: namespaces.filter((n) => n.type !== 'network') } };
  }
  const net = namespaces?.find((n) => n.type === 'network' && n.path);
  if (!net || !namespaces) return spec;
  warnings.push(
    `linux.namespaces: the network namespace ${net.path} is on the host; in the VM the container gets a network namespace of its own with only lo`,
  );
  return {
    ...spec,
    linux: { ...spec.linux, namespaces: namespaces.map((n) => (n === net ? { type: 'network' } : n)) },
  };
}

/** The plan the guest runs: the container's plan, in foreground form (the agent holds it at its last sync until start). */
export async function planVmContainer(spec: Spec, bundle: string, warnings: string[]): Promise<PlanStep[]> {
  // the filter is compiled here (same architecture as the guest) and installed by the launcher there
  const seccomp = await compileProfile(spec.linux?.seccomp);
  if (seccomp?.notify) {
    throw new BerthError('linux.seccomp.listenerPath is not supported by the VM backend yet', {
      code: 'EUNSUPPORTED',
    });
  }
  const plan = planContainer(spec, {
    bundle,
    foreground: true,
    cgroupLayout: 'v2',
    ...(seccomp ? { seccomp } : {}),
  });
  warnings.push(...plan.warnings);
  return plan.steps;
}

/** A plan that runs `proc` in the guest inside the namespaces of the container's process `guestPid`. */
export function planVmExec(spec: Spec, proc: Process, guestPid: number, warnings: string[]): PlanStep[] {
  if (!proc.args?.length)
    throw new BerthError('process.args: must be a non-empty array of strings', { code: 'EINVALIDSPEC' });
  const kinds = new Set((spec.linux?.namespaces ?? []).map((n) => n.type as NamespaceKind));
  const steps: PlanStep[] = [];
  for (const kind of JOIN_ORDER) {
    if (!kinds.has(kind)) continue;
    steps.push({
      op: 'setns',
      path: `/proc/${guestPid}/ns/${NAMESPACES[kind].proc}`,
      nstype: NAMESPACES[kind].flag,
      describe: `join the container's ${kind} namespace`,
    });
  }
  const terminal = proc.terminal === true;
  steps.push({ op: 'clone', flags: 0, detach: false, pty: terminal });
  steps.push({ op: 'sync', id: SYNC_NS_READY, describe: 'wait for the agent' });
  steps.push(terminal ? terminalStep(proc, undefined) : { op: 'setsid' });
  steps.push(...planProcess(proc, 0, warnings));
  steps.push({ op: 'exec', argv: proc.args, env: processEnv(proc.env) });
  return steps;
}

/**
 * Creates a VM container: its state first (so `delete` finds a VM whose
 * creator died), then the VM booted and its plan run up to "created". The
 * record's `pid` is QEMU's.
 */
export async function createVmContainer(
  store: StateStore,
  record: ContainerRecord,
  spec: Spec,
  options: {
    stdio?: [Stdio, Stdio, Stdio];
    consoleSocket?: string;
    overlay?: { lower: string[]; upper: string; work: string };
    preserveFds?: number;
    pidFile?: string;
    network?: ContainerNetworkOptions;
  },
  warn: (m: string) => void,
  /** The container's cgroup (placed and checked by the runtime, made here for berth-vmm). */
  cgroup?: VmCgroup,
): Promise<ContainerRecord> {
  let dir: string;
  try {
    checkSpec(spec, options);
    if (options.network) await checkNetworkOptions(options.network);
    // the VM's size and the bind sources are checked before the network is attached
    const m = await vm();
    m.sizeFromResources(spec.linux?.resources, m.DEFAULT_SIZE, m.hostSize());
    bindSources(spec, options.network ? MAX_SHARES - 1 : MAX_SHARES);
    dir = store.claim(record.id);
  } catch (e) {
    for (const d of record.ownedDirs ?? []) removeTree(d);
    throw e;
  }
  try {
    // written before anything is made: a delete after a crash mid-create detaches it
    if (options.network) record.network = networkRecordBase(options.network);
    store.write(record);
    const nic = options.network ? await attachVmNetwork(store, record, options.network) : undefined;
    await bootVm(store, record, spec, dir, options, warn, nic, cgroup);
    record.status = 'created';
    store.write(record);
    return record;
  } catch (e) {
    if (record.vm) await deleteVm(record).catch(() => {});
    // only a cgroup of the container's own is emptied and removed
    const made = cgroup?.made;
    if (made && !cgroup?.shared) {
      await made.killAll('SIGKILL').catch(() => {});
      await made.delete().catch((err: Error) => warn(`cleanup: ${err.message}`));
    }
    if (record.network) await detachNetwork(record.id, record.network).catch(() => {});
    store.remove(record.id);
    for (const d of record.ownedDirs ?? []) removeTree(d);
    throw e;
  }
}

/**
 * A VM container on a bridge network: a lease, a tap on the bridge (the
 * veth's host end's name), the port rules and the DNS files, as a container
 * gets them; the guest sets the address itself. The lease's holder is this
 * process until QEMU runs (then QEMU's parent).
 */
async function attachVmNetwork(
  store: StateStore,
  record: ContainerRecord,
  o: ContainerNetworkOptions,
): Promise<VmNet> {
  const net = await import('@berth/network');
  const a = await net.attach({
    containerId: record.id,
    tap: true,
    store: new net.NetworkStore(o.stateDir ? { dir: o.stateDir } : {}),
    ...attachSettings(o),
  });
  record.network = attachedRecord(a, o);
  store.write(record);
  const { macFromAddress } = await vm();
  return { tap: a.hostLink, mac: macFromAddress(a.address), address: a.address, gateway: a.gateway };
}

/** The lease lives with the VM: its holder becomes QEMU's parent (a VM gone is a lease free). */
async function holdLease(record: ContainerRecord, pid: number, startTime: number): Promise<void> {
  if (!record.network) return;
  const net = await import('@berth/network');
  const store = new net.NetworkStore(record.network.stateDir ? { dir: record.network.stateDir } : {});
  await store.ipam.commit(record.network.network, record.id, { holder: { pid, startTime } }, 'eth0');
}

/** open(2)'s O_PATH (Linux): an fd that names a file without opening it (node:fs has no constant). */
const O_PATH = 0o10000000;

function fileKind(st: import('node:fs').Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'neither a file nor a directory';
}

/**
 * microvm has 8 virtio-mmio slots (MMIO_SLOTS): the serial ports, the
 * rootfs and the balloon take 3, a NIC one more; the rest are for shares.
 */
const MAX_SHARES = 5;
const MAX_FILE = 1 << 20;

/**
 * The bundle's bind mounts in a VM: a host file (resolv.conf, hosts) is copied
 * into the guest at its host path, a host directory is shared by 9p and
 * mounted there; the plan's bind steps then work unchanged in the guest.
 * Anything else (a device, a socket) cannot cross into a VM: an error.
 */
export function bindSources(
  spec: Spec,
  maxShares = MAX_SHARES,
): {
  files: Array<{ path: string; data: Uint8Array }>;
  shares: Array<{ path: string; guestPath: string; readonly: boolean }>;
} {
  const files: Array<{ path: string; data: Uint8Array }> = [];
  const shares: Array<{ path: string; guestPath: string; readonly: boolean }> = [];
  (spec.mounts ?? []).forEach((m, i) => {
    const bind = m.type === 'bind' || m.options?.includes('bind') || m.options?.includes('rbind');
    if (!bind || !m.source) return;
    const where = `mounts[${i}].source`;
    const source = resolve(m.source);
    // the type first, from an O_PATH fd (no open(2) of the file itself: a FIFO would block,
    // a device would be opened by root); links are followed, as a bind follows them
    let pathFd: number;
    try {
      pathFd = openSync(source, O_PATH);
    } catch (e) {
      throw new BerthError(`${where}: ${source}: ${(e as Error).message}`, {
        code: 'EINVALIDSPEC',
        path: source,
      });
    }
    try {
      const st = fstatSync(pathFd);
      if (st.isFile()) {
        if (st.size > MAX_FILE) {
          throw new BerthError(
            `${where}: ${source} is larger than 1 MiB: the VM backend copies bound files`,
            {
              code: 'EUNSUPPORTED',
            },
          );
        }
        if (files.some((f) => f.path === source)) return;
        // the inode just checked, reopened through its fd: a regular file whatever the path is now
        const fd = openSync(
          `/proc/self/fd/${pathFd}`,
          constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY,
        );
        try {
          const again = fstatSync(fd);
          if (!again.isFile() || again.ino !== st.ino || again.dev !== st.dev)
            throw new BerthError(`${where}: ${source} changed while it was read`, {
              code: 'EINVALIDSPEC',
              path: source,
            });
          const data = Buffer.alloc(Math.min(again.size, MAX_FILE));
          let n = 0;
          while (n < data.length) {
            const r = readSync(fd, data, n, data.length - n, n);
            if (r <= 0) break;
            n += r;
          }
          files.push({ path: source, data: data.subarray(0, n) });
        } finally {
          closeSync(fd);
        }
      } else if (st.isDirectory()) {
        if (shares.some((s) => s.guestPath === source)) return;
        if (shares.length === maxShares) {
          throw new BerthError(`${where}: the VM backend shares at most ${maxShares} directories`, {
            code: 'EUNSUPPORTED',
          });
        }
        shares.push({
          path: realpathSync(source),
          guestPath: source,
          readonly: m.options?.includes('ro') === true,
        });
      } else {
        throw new BerthError(
          `${where}: ${source} is ${fileKind(st)}: only regular files and directories can be bound into a VM`,
          {
            code: 'EUNSUPPORTED',
            path: source,
          },
        );
      }
    } finally {
      closeSync(pathFd);
    }
  });
  return { files, shares };
}

/** A VM container's cgroup on the host: where it goes, and once made, the cgroup. */
export interface VmCgroup {
  path: string;
  systemd: boolean;
  /** it existed before the container: never emptied nor removed */
  shared: boolean;
  made?: import('@berth/cgroups').Cgroup;
}

/**
 * linux.resources as the VM's host processes (berth-vmm, QEMU and its
 * threads) get them: CPU, cpuset, pids, io and the rest as they are; the
 * memory limit (and memory+swap) raised to the guest's RAM plus QEMU's own
 * share (`hostMemoryLimit`), as the guest's RAM is the limit plus its
 * kernel's; no device rules: the container's are the guest's, and on the host
 * they would deny QEMU /dev/kvm and /dev/net/tun.
 */
export function hostResources(
  resources: import('@berth/cgroups').LinuxResources | undefined,
  hostLimit: number,
): import('@berth/cgroups').LinuxResources {
  const { devices: _, ...r } = resources ?? {};
  const out: import('@berth/cgroups').LinuxResources = { ...r, devices: [{ allow: true, access: 'rwm' }] };
  const memory = r.memory;
  if (memory?.limit !== undefined && memory.limit > 0) {
    out.memory = {
      ...memory,
      limit: hostLimit,
      ...(memory.swap !== undefined && memory.swap > 0
        ? { swap: memory.swap + hostLimit - memory.limit }
        : {}),
    };
  }
  return out;
}

/** Makes the container's cgroup with the VM's host limits and puts berth-vmm (`pid`, QEMU not started yet) in it. */
async function placeVmm(
  spec: Spec,
  cgroup: VmCgroup,
  pid: number,
  size: import('@berth/vm').VmSize,
): Promise<void> {
  const { hostMemoryLimit } = await vm();
  const { createCgroup } = await import('./cgroup.js');
  const hostSpec: Spec = {
    ...spec,
    linux: {
      ...spec.linux,
      resources: hostResources(
        spec.linux?.resources as import('@berth/cgroups').LinuxResources | undefined,
        hostMemoryLimit(size),
      ) as NonNullable<Spec['linux']>['resources'],
    },
  };
  // with systemd, the scope is made with berth-vmm in it; else berth-vmm is moved in
  cgroup.made = await createCgroup(
    hostSpec,
    cgroup.path,
    cgroup.systemd,
    false,
    cgroup.shared,
    cgroup.systemd ? pid : undefined,
  );
  if (!cgroup.systemd) await cgroup.made.addProcess(pid);
}

async function bootVm(
  store: StateStore,
  record: ContainerRecord,
  spec: Spec,
  dir: string,
  options: {
    stdio?: [Stdio, Stdio, Stdio];
    consoleSocket?: string;
    overlay?: { lower: string[]; upper: string; work: string };
  },
  warn: (m: string) => void,
  nic?: VmNet,
  cgroup?: VmCgroup,
): Promise<void> {
  const { consoleSocket, ...rest } = options;
  if (consoleSocket) {
    // a terminal for a detached VM container: a host pty whose far end is QEMU's stdio (the
    // guest's own pty is relayed over it), its master handed to the console socket as runc does
    const pty = await openPty();
    try {
      await bootVm(
        store,
        record,
        spec,
        dir,
        { ...rest, stdio: [pty.slave, pty.slave, pty.slave] },
        warn,
        nic,
        cgroup,
      );
      // the guest's pty has ONLCR off (its launcher relays it); QEMU keeps output processing on
      // this pty, so the console socket's side reads \r\n, as from runc's and crun's ptys
      const { sendFdToSocket } = await import('@berth/sys');
      await sendFdToSocket(consoleSocket, pty.master, '/dev/ptmx').catch((e: Error) => {
        throw new BerthError(
          `--console-socket: ${e.message.replace(/^linux\.seccomp\.listenerPath: /, '')}`,
          {
            code: 'EIO',
            path: consoleSocket,
          },
        );
      });
    } finally {
      closeSync(pty.master);
      closeSync(pty.slave);
    }
    return;
  }
  const m = await vm();
  const warnings: string[] = [];
  const steps = await planVmContainer(guestSpec(spec, warnings, !!nic), record.bundle, warnings);
  for (const w of warnings) warn(w);
  const size = m.sizeFromResources(spec.linux?.resources, m.DEFAULT_SIZE, m.hostSize());
  const stdio = (options.stdio ?? ['inherit', 'inherit', 'inherit']).map((s) =>
    s === 'pipe' ? 'ignore' : s,
  ) as ['inherit' | 'ignore' | number, 'inherit' | 'ignore' | number, 'inherit' | 'ignore' | number];
  const machine = await m.createVm({
    ...(AUTOSTART.has(options) ? { autostart: true } : {}),
    id: record.id,
    rootfs: resolve(record.bundle, spec.root?.path ?? ''),
    readonly: spec.root?.readonly === true,
    steps,
    runDir: join(dir, 'vm'),
    size,
    stdio,
    ...(options.overlay ? { overlay: options.overlay } : {}),
    ...(nic ? { net: nic } : {}),
    // the resolv.conf, hosts and hostname the network attach wrote are copied in here
    ...bindSources(spec, nic ? MAX_SHARES - 1 : MAX_SHARES),
    ...(cgroup ? { beforeRun: (pid: number) => placeVmm(spec, cgroup, pid, size) } : {}),
    onSpawn: (vmRecord) => {
      record.vm = vmRecord;
      record.pid = vmRecord.qemuPid;
      record.pidStartTime = vmRecord.qemuStartTime;
      store.write(record);
    },
  });
  if (nic) await holdLease(record, machine.record.qemuPid, machine.record.qemuStartTime);
  record.vm = machine.record;
  record.pid = machine.record.qemuPid;
  record.pidStartTime = machine.record.qemuStartTime;
}

const TIOCSPTLCK = 0x40045431;
const TIOCGPTPEER = 0x5441;

/** A new host pseudo-terminal: the master and its peer (unlocked), both close-on-exec. */
async function openPty(): Promise<{ master: number; slave: number }> {
  const { constants } = await import('node:fs');
  const master = openSync('/dev/ptmx', constants.O_RDWR | constants.O_NOCTTY | 0o2000000);
  try {
    const { libc } = await import('@berth/sys');
    const sys = await libc();
    sys.ioctl(master, TIOCSPTLCK, Buffer.alloc(4));
    const slave = sys.ioctl(master, TIOCGPTPEER, constants.O_RDWR | constants.O_NOCTTY | 0o2000000);
    return { master, slave };
  } catch (e) {
    closeSync(master);
    throw new BerthError(`--console-socket: cannot open a pseudo-terminal: ${(e as Error).message}`, {
      code: 'EIO',
    });
  }
}

/** The most of a VM's status file read: berth-vmm keeps a few short lines there. */
const STATUS_MAX = 4096;

/** The first STATUS_MAX bytes of a regular file, or '' (never more, whatever is there). */
function readStatusFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return '';
  }
  try {
    if (!fstatSync(fd).isFile()) return '';
    const buf = Buffer.alloc(STATUS_MAX);
    const n = readSync(fd, buf, 0, STATUS_MAX, 0);
    return buf.subarray(0, n).toString('latin1');
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

/**
 * The live status of a VM container, from its host process and the guest's
 * state as berth-vmm parsed it (no agent round trip). `stopped` means
 * berth-vmm is gone (QEMU dies with it), never what the guest says: while it
 * runs, the VM is at least `creating`, so `kill` and `delete` reach it.
 */
export function vmStatus(record: ContainerRecord, qemuAlive: boolean): Status {
  if (!qemuAlive || !record.vm) return 'stopped';
  const words = new Set(
    readStatusFile(join(record.vm.runDir, 'status'))
      .split('\n')
      .map((l) => l.split(' ')[0]),
  );
  // paused: QEMU's vCPUs are stopped (`pause` records it once QMP `stop` has answered)
  if (words.has('started')) return record.status === 'paused' ? 'paused' : 'running';
  if (words.has('created')) return 'created';
  // a record made by `create` knows more than an unreadable file
  return record.status === 'running' || record.status === 'paused' || record.status === 'created'
    ? record.status
    : 'creating';
}

async function open(record: ContainerRecord) {
  if (!record.vm) throw new BerthError(`container ${record.id} is not a VM container`, { code: 'ESTATE' });
  return (await vm()).openVm(record.id, record.vm as VmRecord);
}

export async function startVm(record: ContainerRecord): Promise<void> {
  await (await open(record)).start();
}

/** `pause`: QEMU stops the VM's vCPUs (QMP `stop`); every process in the guest is suspended. */
export async function pauseVm(record: ContainerRecord): Promise<void> {
  await (await open(record)).pause();
}

/** `resume`: the vCPUs run again (QMP `cont`). */
export async function resumeVm(record: ContainerRecord): Promise<void> {
  await (await open(record)).resume();
}

/**
 * `update` of a VM container: `memory.limit` moves the balloon (QMP
 * `balloon`): the guest keeps the limit plus its kernel's share, as at boot,
 * at most the memory it booted with (the maximum is fixed then); -1 gives it
 * all of that back. vCPUs are fixed at boot (no CPU hotplug on microvm), and
 * its host cgroup's limits are set at create: any other field set is named in the error, and
 * nothing is changed.
 */
export async function updateVm(
  record: ContainerRecord,
  resources: import('@berth/cgroups').LinuxResources,
): Promise<void> {
  const set: string[] = [];
  for (const [key, value] of Object.entries(resources as Record<string, unknown>)) {
    if (value === undefined) continue;
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value))
        if (v !== undefined && !(key === 'memory' && k === 'limit')) set.push(`linux.resources.${key}.${k}`);
    } else {
      set.push(`linux.resources.${key}`);
    }
  }
  if (set.length) {
    throw new BerthError(
      `container ${record.id} runs in a VM: the VM backend updates only linux.resources.memory.limit (the balloon), not ${set.join(', ')}: its vCPUs are fixed when it boots, and its host cgroup's limits are set then`,
      { code: 'EUNSUPPORTED', path: record.id },
    );
  }
  const limit = resources.memory?.limit;
  if (limit === undefined) return;
  const machine = await open(record);
  const m = await vm();
  const max = machine.record.size.memoryMiB;
  const target = limit < 0 ? max : Math.ceil(limit / (1 << 20)) + m.GUEST_OVERHEAD_MIB;
  if (limit === 0 || target < m.MIN_MEMORY_MIB) {
    throw new BerthError(
      `linux.resources.memory.limit: ${limit} bytes is too little for a VM (the guest needs at least ${m.MIN_MEMORY_MIB - m.GUEST_OVERHEAD_MIB} MiB for the container plus ${m.GUEST_OVERHEAD_MIB} MiB for its kernel)`,
      { code: 'EVMSIZE', path: record.id },
    );
  }
  if (target > max) {
    throw new BerthError(
      `linux.resources.memory.limit: ${limit} bytes needs a ${target} MiB VM, but container ${record.id}'s VM booted with ${max} MiB, its maximum (fixed at boot): at most ${max - m.GUEST_OVERHEAD_MIB} MiB`,
      { code: 'EVMSIZE', path: record.id },
    );
  }
  await machine.setMemory(target);
}

export async function killVm(record: ContainerRecord, signal: number, all: boolean): Promise<void> {
  // SIGKILL needs no agent: the host stops the VM (QEMU, then berth-vmm exits 137)
  if (record.status === 'paused' && signal === 9) return (await open(record)).stop();
  if (record.status === 'paused') {
    // the agent that delivers it runs on the stopped vCPUs
    throw new BerthError(
      `cannot signal container ${record.id}: it is paused (its VM's vCPUs are stopped): resume it first, or delete --force`,
      { code: 'ESTATE', path: record.id },
    );
  }
  await (await open(record)).kill(signal, { all });
}

/** Stops QEMU (if it runs) and removes the VM's run directory. */
export async function deleteVm(record: ContainerRecord): Promise<void> {
  await (await open(record)).delete();
}

/** Waits for the container's process in the VM: its exit status, 128+N for signal N. */
export async function waitVm(record: ContainerRecord): Promise<number> {
  const status = await (await open(record)).wait();
  return status.signal !== undefined ? 128 + status.signal : status.code;
}

/** Runs `proc` in the running VM container; resolves with its exit status. */
export async function execVm(
  record: ContainerRecord,
  spec: Spec,
  proc: Process,
  stdio: [Stdio, Stdio, Stdio] | undefined,
  warn: (m: string) => void,
): Promise<number> {
  const machine = await open(record);
  const guestPid = record.vm?.guestPid;
  if (!guestPid) throw new BerthError(`container ${record.id}: no process in its VM`, { code: 'ESTATE' });
  const warnings: string[] = [];
  const steps = planVmExec(spec, proc, guestPid, warnings);
  for (const w of warnings) warn(w);
  const [i, o, e] = stdio ?? ['inherit', 'inherit', 'inherit'];
  const input: Readable | null =
    i === 'inherit'
      ? process.stdin
      : typeof i === 'number'
        ? createReadStream('', { fd: i, autoClose: false })
        : null;
  const out = (s: Stdio, std: Writable): Writable | null =>
    s === 'inherit' ? std : typeof s === 'number' ? createWriteStream('', { fd: s, autoClose: false }) : null;
  // a terminal in the guest: this side's terminal passes keys through as they are typed
  // (output processing stays on: the guest's pty has ONLCR off, so \n becomes \r\n here, once)
  const raw = proc.terminal === true && input === process.stdin && process.stdin.isTTY === true;
  if (raw) process.stdin.setRawMode(true);
  try {
    return await machine.exec(steps, [input, out(o, process.stdout), out(e, process.stderr)]);
  } finally {
    if (raw) process.stdin.setRawMode(false);
    if (input === process.stdin) process.stdin.pause();
  }
}

/** Create options of a `run` whose VM runs the process at once (no stop at "created" and no `start` round trip). */
const AUTOSTART = new WeakSet<object>();

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** `run` for a VM container: create (boot), start, wait, and delete unless kept; the container's exit status. */
export async function runVm(
  rt: import('./runtime.js').Runtime,
  id: string,
  bundle: string,
  options: import('./runtime.js').RunOptions,
): Promise<number> {
  const spec0 = rt.loadBundle(bundle).spec;
  const autostart = !spec0.hooks?.poststart?.length;
  const createOptions = { ...options };
  if (autostart) AUTOSTART.add(createOptions);
  await rt.create(id, bundle, createOptions);
  const { constants } = await import('node:os');
  const forward = (signal: NodeJS.Signals) => {
    rt.kill(id, constants.signals[signal]).catch(() => {});
  };
  if (options.forwardSignals) for (const s of FORWARDED) process.on(s, forward);
  try {
    if (!autostart) await rt.start(id);
    return await waitVm(rt.store.read(id));
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
    // a start that failed (a poststart hook) has already destroyed the container
    if (!options.keep)
      await rt.delete(id, { force: true }).catch((e: Error & { code?: string }) => {
        if (e.code !== 'ENOTFOUND') throw e;
      });
  }
}
