/** A guest kernel (and its initramfs, if it needs one) in the local cache. */
export interface GuestKernel {
  /** The kernel release, e.g. `6.1.0-18-amd64`. */
  version: string;
  /** The uncompressed or bzImage kernel QEMU boots with `-kernel`. */
  kernel: string;
  initrd?: string;
  /** sha256 of the kernel file, checked on every use of the cache entry. */
  sha256: string;
  /** Where it came from: a Debian package name and version, or a local path. */
  source: string;
}

export interface KernelCacheOptions {
  /** The cache directory (default: under the image store, /var/lib/berth/vm/kernels). */
  dir: string;
  /** A kernel to use as is instead of the cached distribution kernel (`BERTH_VM_KERNEL`). */
  override?: string;
}

/**
 * The guest kernel cache: the distribution's kernel is obtained once on first
 * use (a kernel with virtio-mmio, 9p/virtio-fs and vsock built in or in its
 * initramfs), verified, and reused by every VM.
 */
export interface KernelCache {
  ensure(options: KernelCacheOptions): Promise<GuestKernel>;
  list(dir: string): Promise<GuestKernel[]>;
  /** Removes cached kernels other than the one in use; returns the removed versions. */
  prune(dir: string): Promise<string[]>;
}
