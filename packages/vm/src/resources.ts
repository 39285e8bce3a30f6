import type { LinuxResources } from '@berth/spec';
import { BerthError } from '@berth/sys';

/** The size of a microVM. */
export interface VmSize {
  vcpus: number;
  /** Guest RAM in MiB. */
  memoryMiB: number;
}

/** RAM the guest kernel and agent need on top of the container's limit. */
export const GUEST_OVERHEAD_MIB = 64;
/** Below this the distribution kernel does not boot with its initramfs. */
export const MIN_MEMORY_MIB = 128;
/**
 * What QEMU (and berth-vmm) take on the host beside the guest's RAM: device
 * state, 9p buffers, TCG's translation cache. A VM container's host cgroup
 * allows its guest's RAM plus this (`hostMemoryLimit`).
 */
export const VMM_OVERHEAD_MIB = 256;

/** The memory limit of a VM's host cgroup, in bytes: the guest's RAM and QEMU's own share (VMM_OVERHEAD_MIB). */
export function hostMemoryLimit(size: VmSize): number {
  return (size.memoryMiB + VMM_OVERHEAD_MIB) * (1 << 20);
}
export const DEFAULT_SIZE: VmSize = { vcpus: 1, memoryMiB: 256 };

/** The number of CPUs in a cpuset list such as `0-3,8`. */
export function cpusetCount(list: string): number {
  let n = 0;
  for (const part of list
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m)
      throw new BerthError(`linux.resources.cpu.cpus: ${JSON.stringify(list)} is not a CPU list`, {
        code: 'EVMSIZE',
      });
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a)
      throw new BerthError(`linux.resources.cpu.cpus: ${JSON.stringify(part)} is an empty range`, {
        code: 'EVMSIZE',
      });
    n += b - a + 1;
  }
  return n;
}

/**
 * Maps OCI `linux.resources` to a VM size, so a limit means the same inside a
 * VM as in a container:
 * - vCPUs: `cpu.quota / cpu.period` rounded up when both are set, else the
 *   number of CPUs in `cpu.cpus`, else `defaults.vcpus`; never more than the host has.
 * - memory: `memory.limit` in MiB rounded up plus GUEST_OVERHEAD_MIB, else
 *   `defaults.memoryMiB`; a limit that leaves the guest less than MIN_MEMORY_MIB
 *   is an `EVMSIZE` error naming `linux.resources.memory.limit`.
 */
export function sizeFromResources(
  resources: LinuxResources | undefined,
  defaults: VmSize,
  host: { cpus: number; memoryMiB: number },
): VmSize {
  let vcpus = defaults.vcpus;
  const cpu = resources?.cpu;
  if (cpu?.quota !== undefined && cpu.quota > 0 && cpu.period !== undefined && cpu.period > 0) {
    vcpus = Math.ceil(cpu.quota / cpu.period);
  } else if (cpu?.cpus) {
    vcpus = cpusetCount(cpu.cpus);
  }
  vcpus = Math.max(1, Math.min(vcpus, host.cpus));
  let memoryMiB = defaults.memoryMiB;
  const limit = resources?.memory?.limit;
  if (limit !== undefined && limit > 0) {
    memoryMiB = Math.ceil(limit / (1 << 20)) + GUEST_OVERHEAD_MIB;
    if (memoryMiB < MIN_MEMORY_MIB) {
      throw new BerthError(
        `linux.resources.memory.limit: ${limit} bytes is too little for a VM (the guest needs at least ${MIN_MEMORY_MIB - GUEST_OVERHEAD_MIB} MiB for the container plus ${GUEST_OVERHEAD_MIB} MiB for its kernel)`,
        { code: 'EVMSIZE' },
      );
    }
  }
  if (memoryMiB > host.memoryMiB) {
    throw new BerthError(
      `linux.resources.memory.limit: the VM would need ${memoryMiB} MiB, the host has ${host.memoryMiB} MiB`,
      { code: 'EVMSIZE' },
    );
  }
  return { vcpus, memoryMiB };
}
