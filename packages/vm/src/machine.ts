import type { Accel } from './accel.js';
import type { GuestKernel } from './kernel.js';
import type { VmSize } from './resources.js';
import type { RootfsShare } from './share.js';
import type { StdioTransport } from './stdio.js';

/** Everything needed to start one microVM. */
export interface MachineConfig {
  /** The qemu-system binary for the host architecture. */
  qemu: string;
  /** QEMU's minimal virtio-mmio machine type (no PCI, no firmware tables to speak of). */
  machine: 'microvm';
  accel: Accel;
  size: VmSize;
  kernel: GuestKernel;
  /** Kernel command line words (console, the agent as init, quiet, …). */
  cmdline: string[];
  share: RootfsShare;
  stdio: StdioTransport;
  /** The guest's vsock CID (3 or more, unique on the host) when `stdio` is `vsock`. */
  cid?: number;
  /** A directory private to this VM: QMP, agent and console sockets, QEMU's log. */
  runDir: string;
}

/** Turns a machine config into QEMU's argv (pure; unit-testable without QEMU). */
export type PlanQemu = (config: MachineConfig) => string[];
