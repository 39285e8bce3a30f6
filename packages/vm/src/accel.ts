/** How the guest runs: hardware virtualization through /dev/kvm, or QEMU's TCG emulator. */
export type Accel = 'kvm' | 'tcg';

/** The value KVM_GET_API_VERSION returns on every kernel with a stable KVM API (linux/kvm.h). */
export const KVM_API_VERSION = 12;

/** The KVM_GET_API_VERSION ioctl request on /dev/kvm: `_IO(KVMIO, 0x00)` with KVMIO = 0xAE. */
export const KVM_GET_API_VERSION = 0xae00;

/** The accelerator chosen and why, so `berth` can say why a VM is slow. */
export interface AccelChoice {
  accel: Accel;
  /** e.g. `/dev/kvm: EACCES (permission denied)` when TCG was taken as the fallback. */
  reason: string;
}

/**
 * Picks KVM when /dev/kvm opens read-write and answers KVM_GET_API_VERSION
 * with KVM_API_VERSION, TCG otherwise (never an error: TCG is slow, not wrong).
 * `force` pins the choice (tests, `BERTH_VM_ACCEL`).
 */
export interface AccelProbe {
  choose(force?: Accel): Promise<AccelChoice>;
}
