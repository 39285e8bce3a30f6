#!/usr/bin/env bash
# The VM backend, measured side by side (round-robin) on the same busybox bundle:
#   container  berth run -b BUNDLE              (namespaces on the host kernel)
#   vm         berth run --backend vm -b BUNDLE (a QEMU microVM with its own kernel)
#   bare-qemu  the same QEMU command line, kernel and initramfs work, without berth
# Boot to exit of /bin/true, without a NIC on either side (bare QEMU has none; what a NIC
# costs is bench/vm/network.sh's); the goal is vm / bare-qemu <= 1.15. Then the comparison
# page docs/guides/containers-and-vms.md is generated from these numbers and from
# memory and disk measured on this machine (bench/vm/compare.mjs).
#
# usage: sudo bash bench/vm/run.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-${RUNS:-5}}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
for tool in node qemu-system-x86_64 musl-gcc; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (sudo scripts/setup.sh installs it)" >&2; exit 1; }
done
[ -x apps/berth/dist/cli.cjs ] || npm run build --silent
node packages/vm/scripts/prepare.mjs >/dev/null

work=$(mktemp -d /tmp/berth-vm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
berth="$PWD/apps/berth/dist/cli.cjs"
node "$berth" spec -b "$bundle"
node -e '
  const fs = require("fs"); const f = process.argv[1];
  const c = JSON.parse(fs.readFileSync(f, "utf8"));
  c.process.terminal = false; c.process.args = ["/bin/true"];
  fs.writeFileSync(f, JSON.stringify(c, null, 2));' "$bundle/config.json"
node bench/vm/bare.mjs "$bundle" "$work"

mkdir -p bench/results
out=bench/results/vm.json
id=vmbench-$$
# round-robin, not hyperfine's one-command-at-a-time: on a busy machine the load moves
node bench/vm/interleave.mjs "$out" "$RUNS" \
  container "node $berth --root $work/state run --network none -b $bundle $id-c" \
  vm "node $berth --root $work/state run --network none --backend vm -b $bundle $id-v" \
  bare-qemu "sh $work/bare.sh"
node bench/vm/compare.mjs "$out" "$bundle"
