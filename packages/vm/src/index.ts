/**
 * `@berth/vm`: the microVM backend. Interface only: the types and signatures
 * the implementation (a later issue) will fulfil. The only values exported are
 * facts (the annotation key, kernel ABI numbers).
 *
 * @packageDocumentation
 */
export {
  type Accel,
  type AccelChoice,
  type AccelProbe,
  KVM_API_VERSION,
  KVM_GET_API_VERSION,
} from './accel.js';
export type { AgentMessage, GuestMessage, HostMessage } from './agent.js';
export { BACKEND_ANNOTATION, type Backend, type SelectBackend } from './backend.js';
export type { VmErrorCode, VmErrorFields } from './errors.js';
export type { GuestKernel, KernelCache, KernelCacheOptions } from './kernel.js';
export type { MachineConfig, PlanQemu } from './machine.js';
export type { SizeFromResources, VmSize } from './resources.js';
export type { ChooseShare, RootfsShare } from './share.js';
export { type ExitStatus, type StdioTransport, VMADDR_CID_HOST } from './stdio.js';
export type { VmBackend, VmCreateRequest, VmHandle, VmHostSupport, VmRecord } from './vm.js';
