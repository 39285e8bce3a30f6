import type { LinuxResources } from '@berth/spec';

/** The size of a microVM. */
export interface VmSize {
  vcpus: number;
  /** Guest RAM in MiB. */
  memoryMiB: number;
}

/**
 * Maps OCI `linux.resources` to a VM size, so a limit means the same inside a
 * VM as in a container:
 * - vCPUs: `cpu.quota / cpu.period` rounded up when both are set, else the
 *   number of CPUs in `cpu.cpus`, else `defaults.vcpus`; never more than the
 *   host has.
 * - memory: `memory.limit` in MiB rounded up, plus the guest kernel's and
 *   agent's overhead, else `defaults.memoryMiB`; a limit below the guest's
 *   minimum is an `EVMSIZE` error naming `linux.resources.memory.limit`.
 * The container's cgroup limits still apply inside the guest.
 */
export type SizeFromResources = (
  resources: LinuxResources | undefined,
  defaults: VmSize,
  host: { cpus: number; memoryMiB: number },
) => VmSize;
