#!/usr/bin/env bash
# Container start-up, side by side: berth, runc and crun on the same busybox bundle
# running /bin/true, interleaved run by run (bench/startup.py), and library mode
# (bench/library.mjs: a Node program calling Runtime.run, plain and with a pool of
# prepared containers, Runtime.pool; each CLI's containers/s are measured batch by
# batch between the library's, so that those ratios hold while the load drifts).
# Prints one table: each row's median, min and max, and its ratio to runc and to crun;
# `node -e 0` is the reference for the CLI's floor. The JSON goes to bench/results/startup.json.
#
# crun 1.8 refuses hybrid cgroup layouts (v1 controllers plus cgroup2 at
# /sys/fs/cgroup/unified), so everything is measured inside a private mount
# namespace where that cgroup2 mount is unmounted: the same conditions for each.
# The machine should be otherwise idle (see `uptime`): the ratios are what count.
#
# usage: sudo bash bench/run.sh [RUNS]     (also: bash bench/pull/run.sh for pulls)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${RUNS:-30}}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
for tool in runc crun node python3 unshare; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (sudo scripts/setup.sh installs it)" >&2; exit 1; }
done
[ -f apps/berth/dist/berth.cjs ] && [ -f packages/runtime/dist/index.js ] || npm run build --silent

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
. bench/bundle.sh
make_bundle "$work/bundle" '["/bin/true"]'
make_bundle "$work/sleep" '["/bin/sleep", "60"]'
mkdir -p bench/results
echo "bench: $(nproc) CPUs, $(uname -r), node $(node --version), $(runc --version | head -1), $(crun --version | head -1); load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Every runtime keeps its state under its own --root on one tmpfs, as /run (berth's, runc's and
# crun's default roots) is on a standard host; on this kind of VM /run is on the root disk,
# where each record's create, rename and unlink is a journalled metadata write (BENCH_STATE=disk
# keeps the roots on $work's filesystem instead, as this bench did before 2026-12-02).
unshare --mount --propagation private bash -c "
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  mkdir -p '$work/state'
  [ \"\${BENCH_STATE:-tmpfs}\" = disk ] || mount -t tmpfs -o mode=0711 berth-bench-state '$work/state'
  python3 bench/startup.py '$work/state' '$work/bundle' '$work/sleep' '$RUNS' bench/results/startup.json
"
