/**
 * How the container's root filesystem reaches the guest: virtio-9p (in QEMU
 * itself, works everywhere) or virtio-fs (faster, needs a virtiofsd process
 * per VM and shared guest memory). The guest agent mounts it by `tag`.
 */
export type RootfsShare =
  | {
      kind: '9p';
      /** The host directory (the bundle's rootfs or the container's snapshot). */
      path: string;
      /** The 9p mount tag the guest mounts (`mount -t 9p TAG`). */
      tag: string;
      /** QEMU's `security_model`: how guest ownership and modes are stored on the host. */
      securityModel: 'passthrough' | 'mapped-xattr' | 'mapped-file' | 'none';
      readonly: boolean;
    }
  | {
      kind: 'virtiofs';
      path: string;
      /** The virtio-fs tag the guest mounts (`mount -t virtiofs TAG`). */
      tag: string;
      /** The virtiofsd binary. */
      virtiofsd: string;
      /** The vhost-user socket between virtiofsd and QEMU. */
      socket: string;
      readonly: boolean;
    };

/** Picks virtio-fs when a virtiofsd binary exists, 9p otherwise. */
export type ChooseShare = (path: string, options: { readonly: boolean; virtiofsd?: string }) => RootfsShare;
