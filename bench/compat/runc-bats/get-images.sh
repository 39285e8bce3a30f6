#!/bin/bash
# Local replacement (no network): busybox from Debian busybox-static; "debian" = busybox + host util-linux/bash binaries.
echo "BUSYBOX_IMAGE=/work/compat/runc-bats/images/busybox-rootfs.tar.gz"
echo "DEBIAN_IMAGE=/work/compat/runc-bats/images/debian-rootfs.tar.gz"
