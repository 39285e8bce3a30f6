/**
 * `@berth/vm`: the microVM backend. The same OCI bundle in a QEMU `microvm`
 * with its own kernel: a distribution kernel cached on first use, an
 * initramfs berth writes itself with a static guest agent as PID 1 and the
 * berth launcher, the rootfs shared over virtio-9p, stdio and the exit status
 * over virtio-serial.
 *
 * @packageDocumentation
 */
export {
  type Accel,
  type AccelChoice,
  chooseAccel,
  KVM_API_VERSION,
  KVM_GET_API_VERSION,
  probeKvm,
} from './accel.js';
export { BACKEND_ANNOTATION, type Backend, selectBackend } from './backend.js';
export { type CpioEntry, writeCpio } from './cpio.js';
export type { VmErrorCode, VmErrorFields } from './errors.js';
export {
  DEFAULT_KERNEL_DIR,
  ensureKernel,
  extractVmlinux,
  GUEST_MODULES,
  type GuestKernel,
  type GuestModule,
  hasGuestModules,
  hasPvhNote,
  type KernelCacheOptions,
  listKernels,
  modinfoField,
  moduleLoadOrder,
  NET_ONLY_MODULES,
  pruneKernels,
} from './kernel.js';
export {
  guestCmdline,
  hostTscKhz,
  type MachineConfig,
  MMIO_SLOTS,
  planQemu,
  runFiles,
  VMM_CONSOLE_FD,
  VMM_STATUS_FD,
} from './machine.js';
export { agentSource, type GuestBinaries, guestBinaries, vmmBinary } from './native.js';
export {
  cpusetCount,
  DEFAULT_SIZE,
  GUEST_OVERHEAD_MIB,
  hostMemoryLimit,
  MIN_MEMORY_MIB,
  sizeFromResources,
  VMM_OVERHEAD_MIB,
  type VmSize,
} from './resources.js';
export type { RootfsShare } from './share.js';
export { type ExitStatus, type StdioTransport, VMADDR_CID_HOST } from './stdio.js';
export {
  AGENT_ANSWER_MAX,
  AGENT_ANSWER_MS,
  AGENT_KILL_ANSWER_MS,
  buildInitramfs,
  createVm,
  findQemu,
  type GuestState,
  guestKernelChoice,
  hostSize,
  macFromAddress,
  openVm,
  parseStatus,
  probeVm,
  readBounded,
  STATUS_READ_MAX,
  Vm,
  type VmCreateRequest,
  type VmHostSupport,
  type VmNet,
  type VmRecord,
  type VmStatus,
  type VmStdio,
  vmCacheDir,
} from './vm.js';
