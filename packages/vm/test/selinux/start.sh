#!/bin/sh
# The SELinux test guest's first command (packages/vm/test/selinux-host.test.ts): mounts
# selinuxfs (the guest's agent does not), loads the host's policy (Debian's
# selinux-policy-default, installed by scripts/setup.sh; /etc/selinux/config names it),
# then runs its arguments (vitest) in unconfined_execmem_t: an unconfined domain that,
# unlike the kernel's own (kernel_t), may map executable memory, which Node's JIT needs
# once a test switches to enforcing mode. The kernel booted permissive (enforcing=0):
# the host's root, a 9p share, carries no labels, and the switch to that domain is allowed.
set -eu
mount -t selinuxfs -o nosuid,noexec selinuxfs /sys/fs/selinux
started=$(date +%s%N)
/sbin/load_policy
echo "selinux: policy loaded in $(( ($(date +%s%N) - started) / 1000000 )) ms; enforce=$(cat /sys/fs/selinux/enforce)"
exec runcon system_u:system_r:unconfined_execmem_t:s0-s0:c0.c1023 "$@"
