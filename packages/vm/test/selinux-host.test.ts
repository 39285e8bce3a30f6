// The SELinux test host: this machine's kernel does not run SELinux, so berth's
// SELinux handling (process.selinuxLabel, linux.mountLabel, `berth exec
// --process-label`) is also run against one that does: a guest of the guest test
// host (./guest-host.ts: Debian's kernel in QEMU, the host's root shared read-only)
// booted with SELinux as its major LSM instead of AppArmor (Debian builds both in;
// `security=selinux` picks it). ./selinux/start.sh loads Debian's default
// policy (selinux-policy-default, installed on this host by scripts/setup.sh without
// enabling SELinux here) before apps/berth/test/guest/selinux.guest.ts runs; the
// counts of its report are asserted here. Only that file runs in this boot: TCG is slow.
// Needs root, qemu-system-x86, musl-tools and selinux-policy-default (scripts/setup.sh).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runInGuest } from './guest-host.js';

describe('the SELinux test host', () => {
  it('runs the SELinux tests in a guest whose kernel enforces SELinux with a loaded policy', {
    timeout: 1_200_000,
  }, async () => {
    // the policy the guest loads comes from this host's /etc/selinux (setup.sh installs it)
    expect(
      existsSync('/etc/selinux/default/policy'),
      'no SELinux policy: scripts/setup.sh installs selinux-policy-default',
    ).toBe(true);
    const { report, files, skipped } = await runInGuest({
      name: 'selinux',
      config: fileURLToPath(new URL('./selinux/vitest.config.ts', import.meta.url)),
      // mounts selinuxfs, loads the policy, runs vitest in a domain that may JIT in enforcing mode
      start: fileURLToPath(new URL('./selinux/start.sh', import.meta.url)),
      // SELinux instead of AppArmor as the major LSM; permissive until a test asks for enforcing
      cmdline: ['security=selinux', 'selinux=1', 'enforcing=0'],
      memoryMiB: 2048,
      // containers need a cgroup hierarchy: the agent's cgroup2 mount
      cgroup2: true,
    });
    expect(files).toEqual(['apps/berth/test/guest/selinux.guest.ts']);
    expect(report.numPassedTests).toBeGreaterThanOrEqual(7);
    expect(skipped).toEqual([]);
  });
});
