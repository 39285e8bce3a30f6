#!/usr/bin/env bash
# Where a `berth run` of /bin/true spends its time: a syscall timeline (strace, only the
# marker syscalls traced, so that tracing costs little) and a V8 CPU profile of the CLI.
# usage: sudo bash bench/profile/run.sh      (notes in bench/results/profile-*.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "profile: run as root" >&2; exit 1; }
work=$(mktemp -d /tmp/berth-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT
b=$work/bundle
. bench/bundle.sh
make_bundle "$b" '["/bin/true"]'
bin=${BERTH_BENCH_BIN:-apps/berth/bin/berth.cjs} # $BERTH_BENCH_BIN: another build of the bin, as in bench/run.sh
berth=(env -u NODE_EXTRA_CA_CERTS node "$bin" --root "$work/state")
for i in 1 2 3; do "${berth[@]}" run -b "$b" "warm-$i"; done # the code cache is made at the first run
echo "== syscall timeline (ms since node's execve)"
strace -f --seccomp-bpf -ttt -o "$work/strace" \
  -e trace=execve,execveat,clone,clone3,openat,memfd_create,pivot_root,mkdir,rmdir,wait4,exit_group \
  "${berth[@]}" run -b "$b" traced
grep -v -e ENOENT -e CLONE_THREAD -e '\.so' -e '/proc/self/fd' -e 'resumed>' "$work/strace" |
  awk 'NR == 1 { t0 = $2 } { printf "%8.1f  %s\n", ($2 - t0) * 1000, substr($0, index($0, $3), 140) }'
echo "== V8 CPU profile of the CLI (node --cpu-prof; sampling every 100 µs)"
for i in 1 2; do # the first run makes a code cache for these V8 flags
  env -u NODE_EXTRA_CA_CERTS node --cpu-prof --cpu-prof-dir="$work/prof" --cpu-prof-interval 100 \
    "$bin" --root "$work/state" run -b "$b" "prof-$i"
done
node bench/profile/summary.mjs "$(ls "$work"/prof/*.cpuprofile | tail -1)" 40
