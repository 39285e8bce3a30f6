import { describe, expect, it } from 'vitest';
import { type KernelFiles, overlayInKernel } from './image-bundle.js';

/** A kernel as overlayInKernel sees it: the files given, and the paths that exist. */
function kernel(files: Record<string, string>, paths: string[] = []): KernelFiles {
  return { read: (name) => files[name], exists: (p) => paths.includes(p) || p in files };
}

const FILESYSTEMS = 'nodev\tsysfs\nnodev\ttmpfs\n\text4\n';
const DEBIAN_DEP =
  'kernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz\nkernel/fs/overlayfs/overlay.ko.xz:\nkernel/fs/isofs/isofs.ko.xz:\n';

describe('overlayInKernel', () => {
  it('takes overlayfs that is loaded or built in', () => {
    expect(overlayInKernel(kernel({ '/proc/filesystems': `${FILESYSTEMS}nodev\toverlay\n` }))).toBe(true);
    expect(overlayInKernel(kernel({ '/proc/filesystems': FILESYSTEMS }, ['/sys/module/overlay']))).toBe(true);
    expect(
      overlayInKernel(
        kernel({ '/proc/filesystems': FILESYSTEMS, 'modules.builtin': 'kernel/fs/overlayfs/overlay.ko\n' }),
      ),
    ).toBe(true);
  });

  it('takes a module nobody has loaded yet (a fresh Debian 12 host): the first mount loads it', () => {
    const files = {
      '/proc/filesystems': FILESYSTEMS,
      'modules.dep': DEBIAN_DEP,
      '/proc/sys/kernel/modprobe': '/sbin/modprobe\n',
      '/proc/sys/kernel/modules_disabled': '0\n',
    };
    expect(overlayInKernel(kernel(files, ['/sbin/modprobe']))).toBe(true);
    // no modprobe to load it, module loading switched off, or no such module
    expect(overlayInKernel(kernel(files))).toBe(false);
    expect(
      overlayInKernel(kernel({ ...files, '/proc/sys/kernel/modules_disabled': '1\n' }, ['/sbin/modprobe'])),
    ).toBe(false);
    expect(
      overlayInKernel(
        kernel({ ...files, 'modules.dep': 'kernel/fs/overlayfs2/notoverlay.ko:\n' }, ['/sbin/modprobe']),
      ),
    ).toBe(false);
  });

  it('is false without a word of overlayfs (a kernel without it, or a container without /lib/modules)', () => {
    expect(overlayInKernel(kernel({ '/proc/filesystems': FILESYSTEMS }))).toBe(false);
    expect(overlayInKernel(kernel({}))).toBe(false);
  });
});
