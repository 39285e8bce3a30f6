/**
 * The runtime-spec features document (features.md, features-linux.md): what
 * this berth, on this host, can do. containerd and podman read it through
 * `berth features`. Every list names only what berth really applies: a field
 * that would fail planning is left out.
 */
import { release } from 'node:os';
import { parseMountOptions } from '@berth/rootfs';
import {
  CAPABILITIES,
  type Features,
  HOOK_NAMES,
  OCI_VERSION,
  SECCOMP_ACTIONS,
  SECCOMP_ARCHES,
  SECCOMP_FLAGS,
  SECCOMP_OPERATORS,
} from '@berth/spec';

// The words runc and crun accept in mounts[].options; berth lists those it parses as flags.
const MOUNT_OPTION_CANDIDATES = [
  'async', 'atime', 'bind', 'defaults', 'dev', 'diratime', 'dirsync', 'exec', 'idmap', 'iversion',
  'lazytime', 'loud', 'mand', 'noatime', 'nodev', 'nodiratime', 'noexec', 'noiversion', 'nolazytime',
  'nomand', 'norelatime', 'nostrictatime', 'nosuid', 'nosymfollow', 'private', 'ratime', 'rbind', 'rdev',
  'rdiratime', 'relatime', 'remount', 'rexec', 'ridmap', 'rnoatime', 'rnodev', 'rnodiratime', 'rnoexec',
  'rnorelatime', 'rnostrictatime', 'rnosuid', 'rnosymfollow', 'ro', 'rprivate', 'rrelatime', 'rro', 'rrw',
  'rshared', 'rslave', 'rstrictatime', 'rsuid', 'rsymfollow', 'runbindable', 'rw', 'shared', 'silent',
  'slave', 'strictatime', 'suid', 'symfollow', 'sync', 'tmpcopyup', 'unbindable',
]; // biome-ignore format: a word list

/** Mount options berth turns into mount flags, propagation or its own handling (not filesystem data). */
export function supportedMountOptions(): string[] {
  return MOUNT_OPTION_CANDIDATES.filter((opt) => {
    try {
      return parseMountOptions([opt]).data === '';
    } catch {
      return false; // known but refused
    }
  }).sort();
}

function kernelAtLeast(major: number, minor: number): boolean {
  const [a = 0, b = 0] = release()
    .split(/[.-]/)
    .map((n) => Number.parseInt(n, 10) || 0);
  return a > major || (a === major && b >= minor);
}

/** The features document for this host. */
export async function features(): Promise<Features> {
  const { libseccompVersion, seccompArchSupported } = await import('@berth/sys');
  const version = await libseccompVersion();
  const archs: string[] = [];
  if (version) for (const arch of SECCOMP_ARCHES) if (await seccompArchSupported(arch)) archs.push(arch);
  // the kernel versions that brought each filter flag (seccomp(2))
  const flagKernel: Record<string, [number, number]> = {
    SECCOMP_FILTER_FLAG_TSYNC: [3, 17],
    SECCOMP_FILTER_FLAG_LOG: [4, 14],
    SECCOMP_FILTER_FLAG_SPEC_ALLOW: [4, 17],
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: [5, 19],
  };
  const supportedFlags = SECCOMP_FLAGS.filter((f) => {
    const k = flagKernel[f];
    return k !== undefined && kernelAtLeast(k[0], k[1]);
  });
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: [...HOOK_NAMES],
    mountOptions: supportedMountOptions(),
    linux: {
      // time namespaces need CLONE_NEWTIME (5.6)
      namespaces: [
        'cgroup',
        'ipc',
        'mount',
        'network',
        'pid',
        'user',
        'uts',
        ...(kernelAtLeast(5, 6) ? ['time'] : []),
      ],
      capabilities: [...CAPABILITIES],
      cgroup: { v1: true, v2: true, systemd: true, systemdUser: false, rdma: true },
      seccomp: {
        enabled: version !== undefined,
        ...(version
          ? {
              actions: [...SECCOMP_ACTIONS],
              operators: [...SECCOMP_OPERATORS],
              archs,
              knownFlags: [...SECCOMP_FLAGS],
              supportedFlags,
            }
          : {}),
      },
      apparmor: { enabled: true },
      selinux: { enabled: true },
      // applied where a resctrl filesystem is mounted; elsewhere an error naming the field
      intelRdt: { enabled: true, schemata: true, monitoring: true },
      // moved at create into the container's network namespace, their permanent global addresses kept
      netDevices: { enabled: true },
      memoryPolicy: {
        modes: [
          'MPOL_BIND',
          'MPOL_DEFAULT',
          'MPOL_INTERLEAVE',
          'MPOL_LOCAL',
          'MPOL_PREFERRED',
          'MPOL_PREFERRED_MANY',
          'MPOL_WEIGHTED_INTERLEAVE',
        ],
        flags: ['MPOL_F_NUMA_BALANCING', 'MPOL_F_RELATIVE_NODES', 'MPOL_F_STATIC_NODES'],
      },
      // idmapped mounts (mount_setattr, 5.12) under overlay's layers (5.19): `idmap`/`ridmap`, image snapshots
      mountExtensions: { idmap: { enabled: kernelAtLeast(5, 19) } },
    },
    annotations: {
      ...(version ? { 'io.github.seccomp.libseccomp.version': version } : {}),
      'org.opencontainers.runc.checkpoint.enabled': 'false',
      ...(await vmFeatures()),
    },
  };
}

/** What the VM backend (`org.berth.backend: vm`) offers on this host and what it honours. */
async function vmFeatures(): Promise<Record<string, string>> {
  const { probeVm } = await import('@berth/vm');
  const host = probeVm();
  return {
    'org.berth.backend.vm.enabled': String(host.qemu !== undefined && host.muslGcc !== undefined),
    'org.berth.backend.vm.accelerator': `${host.accel.accel} (${host.accel.reason})`,
    'org.berth.backend.vm.honours':
      'process (args, env, cwd, user, capabilities, rlimits, terminal in the foreground and with --console-socket), root (readonly), mounts (bind: files copied, directories shared by 9p), hostname, new namespaces inside the guest, linux.seccomp, linux.resources.cpu (vCPUs) and memory.limit (guest RAM), pause and resume (the vCPUs stop), update of memory.limit (a virtio-balloon target, up to the size booted with), bridge networks (a tap on the bridge, an address from the same IPAM as containers, set in the guest, resolv.conf/hosts/hostname, published ports by the same DNAT rules)',
    'org.berth.backend.vm.unsupported':
      'preserve-fds, joining host namespaces (host networking included), prestart and createRuntime hooks, update of anything but memory.limit (vCPUs are fixed at boot), memory above the size booted with, stats, CNI networks, terminal resize after start',
  };
}
