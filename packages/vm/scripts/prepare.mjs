// Fetches and verifies the guest kernel (the distribution's, via apt-get download) and
// builds the static guest agent and launcher, so the first VM does not wait for them.
// Run by scripts/setup.sh after the build; safe to run again (a no-op when cached).
import { join } from 'node:path';
import { DEFAULT_KERNEL_DIR, ensureKernel, guestBinaries, vmCacheDir } from '@berth/vm';

const cache = vmCacheDir();
const started = Date.now();
const kernel = ensureKernel({
  dir:
    process.env.BERTH_VM_KERNELS ??
    (process.env.BERTH_VM_CACHE ? join(cache, 'kernels') : DEFAULT_KERNEL_DIR),
  ...(process.env.BERTH_VM_KERNEL ? { override: process.env.BERTH_VM_KERNEL } : {}),
});
const bins = guestBinaries(join(cache, 'bin'));
console.log(
  `vm: guest kernel ${kernel.version} (${kernel.source}, ${kernel.modules.length} modules), agent ${bins.agent} (${Date.now() - started} ms)`,
);
