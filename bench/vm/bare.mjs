// Prepares "bare QEMU" for the VM bench: the same kernel, the same initramfs work (agent,
// launcher, modules, the same plan for the same bundle) and the same QEMU command line
// berth uses, minus berth itself: no CLI, no state, and the plan's last sync point (where
// the container waits for `start`) taken out so the guest runs straight to exit.
// usage: node bench/vm/bare.mjs BUNDLE WORKDIR   -> writes WORKDIR/bare.sh
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planContainer, SYNC_READY_TO_EXEC } from '@berth/runtime';
import { encodePlan } from '@berth/sys';
import {
  buildInitramfs,
  chooseAccel,
  DEFAULT_KERNEL_DIR,
  DEFAULT_SIZE,
  ensureKernel,
  findQemu,
  guestBinaries,
  guestCmdline,
  planQemu,
  vmCacheDir,
} from '@berth/vm';

const [bundle, work] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
const rootfs = join(bundle, spec.root.path);
const steps = planContainer(spec, { bundle, foreground: true, cgroupLayout: 'v2' }).steps.filter(
  (s) => !(s.op === 'sync' && s.id === SYNC_READY_TO_EXEC),
);
const kernel = ensureKernel({ dir: DEFAULT_KERNEL_DIR });
const bins = guestBinaries(join(vmCacheDir(), 'bin'));
const runDir = join(work, 'bare-run');
mkdirSync(runDir, { recursive: true });
const initrd = join(runDir, 'initrd');
writeFileSync(
  initrd,
  buildInitramfs(
    kernel,
    bins,
    [
      ['rootfs', rootfs],
      ['tag', 'rootfs'],
      ['readonly', '0'],
      ['options', 'msize=262144,cache=mmap,access=client'],
    ],
    encodePlan(steps),
  ),
);
const qemu = findQemu();
const accel = chooseAccel(undefined, qemu).accel;
const argv = planQemu({
  qemu,
  accel,
  size: DEFAULT_SIZE,
  kernel: kernel.kernel,
  initrd,
  cmdline: guestCmdline(accel),
  share: { kind: '9p', path: rootfs, tag: 'rootfs', securityModel: 'passthrough', readonly: false },
  runDir,
  stdoutFd: 1,
  stderrFd: 3,
  sandbox: true,
});
const quote = (a) => `'${a.replace(/'/g, `'\\''`)}'`;
writeFileSync(
  join(work, 'bare.sh'),
  `#!/bin/sh\nexec ${[qemu, ...argv].map(quote).join(' ')} </dev/null 3>&2 2>${quote(join(runDir, 'qemu.log'))}\n`,
  { mode: 0o755 },
);
