// The vitest run *inside* the SELinux test guest (packages/vm/test/selinux-host.test.ts):
// a kernel booted with SELinux as its major LSM (AppArmor off, so only the SELinux
// tests run here), Debian's default policy loaded by ./start.sh before vitest starts.
// The repository is read-only there: the cache goes to /tmp.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../../../..', import.meta.url)),
  cacheDir: '/tmp/vite-cache',
  test: {
    include: ['apps/berth/test/guest/selinux.guest.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
