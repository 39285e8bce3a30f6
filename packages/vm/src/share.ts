/**
 * How the container's root filesystem reaches the guest: virtio-9p, served by
 * QEMU itself. QEMU opens the shared directory once and resolves every guest
 * path below it component by component without following symlinks out of it,
 * so nothing the guest does reaches the host outside the share.
 */
export interface RootfsShare {
  kind: '9p';
  /** The host directory (the bundle's rootfs, its real path). */
  path: string;
  /** The 9p mount tag the guest mounts. */
  tag: string;
  /** QEMU's `security_model`: `passthrough` stores the guest's owners and modes as they are. */
  securityModel: 'passthrough' | 'mapped-xattr' | 'mapped-file' | 'none';
  readonly: boolean;
}
