import { spawnSync } from 'node:child_process';
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
 * KVM when /dev/kvm exists, opens read-write and, given the `qemu` that will run
 * the guest, that QEMU can start a KVM vCPU as berth configures it (see probeKvm);
 * TCG otherwise (never an error: TCG is slow, not wrong). `force` (or
 * `BERTH_VM_ACCEL`) pins it.
 */
export function chooseAccel(force?: Accel, qemu?: string): AccelChoice {
  const pinned = force ?? (process.env['BERTH_VM_ACCEL'] as Accel | undefined);
  if (pinned === 'kvm' || pinned === 'tcg') return { accel: pinned, reason: 'pinned (BERTH_VM_ACCEL)' };
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', reason: '/dev/kvm: no such device' };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (e) {
    return { accel: 'tcg', reason: `/dev/kvm: ${(e as NodeJS.ErrnoException).code ?? 'not usable'}` };
  }
  return qemu ? probeKvm(qemu) : { accel: 'kvm', reason: '/dev/kvm opens read-write' };
}

const probed = new Map<string, AccelChoice>();

/**
 * Whether `qemu` can start a vCPU under KVM with the CPU model berth asks for
 * (`-cpu host` on a microvm, as planQemu): QEMU is started paused and told to quit
 * (~50 ms, once per process and QEMU binary). Some hosts expose a /dev/kvm that
 * QEMU cannot use: a nested hypervisor may refuse an MSR of the host CPU model,
 * and QEMU then aborts before the guest runs. TCG then, with QEMU's reason.
 */
export function probeKvm(qemu: string): AccelChoice {
  const known = probed.get(qemu);
  if (known) return known;
  const r = spawnSync(
    qemu,
    ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host', '-m', '64M', '-nodefaults', '-no-user-config'].concat([
      '-display',
      'none',
      '-S',
      '-monitor',
      'stdio',
    ]),
    { input: 'quit\n', encoding: 'utf8', timeout: 15_000, stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let choice: AccelChoice;
  if (r.status === 0) choice = { accel: 'kvm', reason: '/dev/kvm: QEMU starts a KVM vCPU' };
  else {
    const said = (r.stderr ?? '')
      .split('\n')
      .map((l) => l.replace(/^.*?: (error: )?/, '').trim())
      .find((l) => l !== '');
    const why = said ?? r.error?.message ?? `exit status ${r.status ?? r.signal}`;
    choice = { accel: 'tcg', reason: `/dev/kvm: QEMU cannot start a KVM vCPU here (${why})` };
  }
  probed.set(qemu, choice);
  return choice;
}
