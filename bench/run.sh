#!/usr/bin/env bash
# Container start-up, side by side: `run` of /bin/true on the same busybox bundle
# with berth, runc and crun, in one hyperfine run, reported as ratios to runc.
#
# crun 1.8 refuses hybrid cgroup layouts (v1 controllers plus cgroup2 at
# /sys/fs/cgroup/unified), so all three are measured inside a private mount
# namespace where that cgroup2 mount is unmounted: same conditions for each.
#
# usage: sudo bash bench/run.sh [RUNS]     (also: bash bench/pull/run.sh for pulls)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${RUNS:-30}}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
for tool in hyperfine runc crun node; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (sudo scripts/setup.sh installs it)" >&2; exit 1; }
done
[ -x apps/berth/dist/cli.cjs ] || npm run build --silent

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
runc spec -b "$bundle"
node -e '
  const fs = require("fs"); const f = process.argv[1];
  const c = JSON.parse(fs.readFileSync(f, "utf8"));
  c.process.terminal = false; c.process.args = ["/bin/true"];
  fs.writeFileSync(f, JSON.stringify(c, null, 2));' "$bundle/config.json"

berth="$PWD/apps/berth/dist/cli.cjs"
mkdir -p bench/results
out=bench/results/startup.json
id=bench-$$
unshare --mount --propagation private bash -c "
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  hyperfine --shell=none --warmup 3 --runs $RUNS --export-json '$out' \
    -n berth 'node $berth --root $work/berth run -b $bundle $id-berth' \
    -n runc 'runc --root $work/runc run -b $bundle $id-runc' \
    -n crun 'crun --root $work/crun run -b $bundle $id-crun'
"
node -e '
  const r = require(process.argv[1]).results;
  const by = Object.fromEntries(r.map((x) => [x.command, x]));
  const base = by.runc.mean;
  console.log("\nrun /bin/true, mean over " + by.runc.times.length + " runs (ratio to runc; lower is faster):");
  for (const name of ["berth", "runc", "crun"]) {
    const x = by[name];
    console.log(`  ${name.padEnd(6)} ${(x.mean * 1000).toFixed(1).padStart(7)} ms ± ${(x.stddev * 1000).toFixed(1)}  ratio ${(x.mean / base).toFixed(2)}`);
  }' "$PWD/$out"
