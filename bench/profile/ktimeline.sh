#!/usr/bin/env bash
# Library mode's timeline from the kernel: tracefs events only (no strace, which slows a
# container several-fold and moves where the time goes), COUNT containers one at a time,
# then each phase's median and mean per container (bench/profile/ktimeline.py).
# usage: sudo bash bench/profile/ktimeline.sh [COUNT]     (notes in bench/results/profile-*.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "ktimeline: run as root" >&2; exit 1; }
count=${1:-100}
T=/sys/kernel/tracing
mounted=
if [ ! -e $T/trace ]; then mount -t tracefs nodev $T; mounted=1; fi
work=$(mktemp -d /tmp/berth-ktimeline.XXXXXX)
cleanup() {
  echo 0 > $T/tracing_on; echo > $T/set_event; echo > $T/trace
  [ -z "$mounted" ] || umount $T
  rm -rf "$work"
}
trap cleanup EXIT
b=$work/bundle
. bench/bundle.sh
make_bundle "$b" '["/bin/true"]'
echo > $T/trace
echo 'sched:sched_process_fork sched:sched_process_exec sched:sched_process_exit syscalls:sys_enter_clone syscalls:sys_exit_read syscalls:sys_enter_read syscalls:sys_enter_pivot_root' > $T/set_event
echo 16384 > $T/buffer_size_kb
echo 1 > $T/tracing_on
# as bench/run.sh: a private mount namespace without cgroup2 (crun's conditions), state on tmpfs
unshare --mount --propagation private bash -c "
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  mkdir -p '$work/state'; mount -t tmpfs berth-ktimeline '$work/state'
  node bench/profile/library.mjs '$work/state' '$b' '$count'"
echo 0 > $T/tracing_on
python3 bench/profile/ktimeline.py $T/trace
