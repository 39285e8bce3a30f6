import type { BerthErrorFields } from '@berth/sys';

/** The codes a VM backend failure carries (thrown as a `BerthError` of `@berth/sys`). */
export type VmErrorCode =
  /** `org.berth.backend` (or `--backend`) has a value other than `container` or `vm`. */
  | 'EBACKEND'
  /** No usable qemu-system binary for the host architecture (the message says which package to install). */
  | 'ENOQEMU'
  /** The guest kernel could not be found, fetched or verified. */
  | 'EKERNEL'
  /** The guest agent could not be built, did not report in time, or broke the protocol. */
  | 'EAGENT'
  /** `linux.resources` cannot be turned into a VM size (e.g. a memory limit below the guest's minimum). */
  | 'EVMSIZE'
  /** The rootfs could not be shared into the guest. */
  | 'ESHARE'
  /** QEMU exited or refused a command; its log is in the message. */
  | 'EQEMU';

export interface VmErrorFields extends BerthErrorFields {
  code: VmErrorCode;
}
