import { accessSync, constants, existsSync } from 'node:fs';

/** How the guest runs: hardware virtualization through /dev/kvm, or QEMU's TCG emulator. */
export type Accel = 'kvm' | 'tcg';

/** The value KVM_GET_API_VERSION returns on every kernel with a stable KVM API (linux/kvm.h). */
export const KVM_API_VERSION = 12;

/** The KVM_GET_API_VERSION ioctl request on /dev/kvm: `_IO(KVMIO, 0x00)` with KVMIO = 0xAE. */
export const KVM_GET_API_VERSION = 0xae00;

/** The accelerator chosen and why, so `berth` can say why a VM is slow. */
export interface AccelChoice {
  accel: Accel;
  /** e.g. `/dev/kvm: no such device` when TCG was taken as the fallback. */
  reason: string;
}

/**
 * KVM when /dev/kvm exists and opens read-write, TCG otherwise (never an
 * error: TCG is slow, not wrong). `force` (or `BERTH_VM_ACCEL`) pins it.
 */
export function chooseAccel(force?: Accel): AccelChoice {
  const pinned = force ?? (process.env['BERTH_VM_ACCEL'] as Accel | undefined);
  if (pinned === 'kvm' || pinned === 'tcg') return { accel: pinned, reason: 'pinned (BERTH_VM_ACCEL)' };
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', reason: '/dev/kvm: no such device' };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (e) {
    return { accel: 'tcg', reason: `/dev/kvm: ${(e as NodeJS.ErrnoException).code ?? 'not usable'}` };
  }
  return { accel: 'kvm', reason: '/dev/kvm opens read-write' };
}
