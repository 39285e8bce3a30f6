// The vitest run *inside* the cgroup v2 test guest (packages/vm/test/cgroup-v2-host.test.ts):
// @berth/cgroups' real-kernel tests and the CLI's limit tests, against a kernel that has
// only a cgroup2 hierarchy. The repository is read-only there: the cache goes to /tmp.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../../../..', import.meta.url)),
  cacheDir: '/tmp/vite-cache',
  test: {
    include: [
      'packages/cgroups/test/**/*.test.ts',
      'apps/berth/test/cgroups.test.ts',
      // the systemd cgroup driver against a systemd of its own, with every controller to limit
      'apps/berth/test/systemd-cgroup.test.ts',
      // what needs a kernel with AppArmor enabled (Debian's guest kernel has it by default; this host
      // may not). SELinux needs another boot: packages/vm/test/selinux-host.test.ts
      'apps/berth/test/guest/apparmor.guest.ts',
    ],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // TCG: one file at a time keeps the guest's two vCPUs for the tests' own processes
    fileParallelism: false,
  },
});
