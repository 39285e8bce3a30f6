// The cgroup v2 test host: this machine's cgroups may be v1 or hybrid, so the v2
// code of @berth/cgroups and the CLI's limits are also run against a kernel that
// has only a cgroup2 hierarchy, with every controller: a guest of the guest test
// host (./guest-host.ts: Debian's kernel in QEMU, the host's root shared read-only).
// Inside it vitest runs packages/cgroups/test/*.test.ts and
// apps/berth/test/cgroups.test.ts (test/cgroup-v2/vitest.config.ts), and, since
// Debian's kernel enables AppArmor by default, apps/berth/test/guest/apparmor.guest.ts;
// the counts of its report are asserted here.
// Needs root, qemu-system-x86 and musl-tools (scripts/setup.sh), and a built tree.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runInGuest } from './guest-host.js';

describe('the cgroup v2 test host', () => {
  it('runs @berth/cgroups and the CLI limit tests in a guest with only cgroup2', {
    timeout: 1_200_000,
  }, async () => {
    const { report, files, skipped } = await runInGuest({
      name: 'v2host',
      config: fileURLToPath(new URL('./cgroup-v2/vitest.config.ts', import.meta.url)),
      cgroup2: true,
    });
    expect(files).toEqual(
      expect.arrayContaining([
        'apps/berth/test/cgroups.test.ts',
        'apps/berth/test/guest/apparmor.guest.ts',
        'apps/berth/test/systemd-cgroup.test.ts',
        'packages/cgroups/test/v2-devices.test.ts',
        'packages/cgroups/test/v2-unified.test.ts',
      ]),
    );
    expect(report.numPassedTests).toBeGreaterThanOrEqual(24);
    // skipped only where a test needs what a v2-only host cannot have (v1 controllers, a hybrid
    // layout, a controller missing from cgroup2): every v2 test ran
    expect(
      skipped.filter(
        (name) =>
          !/\[skipped: this host lacks (cgroup v1 controllers|hybrid layout|a cgroup2 controller missing from the host)/.test(
            name,
          ),
      ),
    ).toEqual([]);
  });
});
