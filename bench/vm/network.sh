#!/usr/bin/env bash
# What a VM's NIC costs: boot to exit of `true` in the built-in busybox image, in a VM
# without a NIC (--network none) and with one on a bridge (--network bridge: a lease, a tap
# on the bridge, virtio_net loaded and eth0 set up by the agent, resolv.conf/hosts written,
# then the tap, the lease and the rules removed by --rm), round-robin.
#
# usage: sudo bash bench/vm/network.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-${RUNS:-5}}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
[ -x apps/berth/dist/cli.cjs ] || npm run build --silent
node packages/vm/scripts/prepare.mjs >/dev/null

work=$(mktemp -d /tmp/berth-vm-net-bench.XXXXXX)
bridge=bb$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
cleanup() {
  ip link del "$bridge" 2>/dev/null || true
  nft -a list chain ip berth postrouting 2>/dev/null | sed -n "s/.*\"berth:n:$bridge\" # handle \([0-9]*\)/\1/p" |
    while read -r h; do nft delete rule ip berth postrouting handle "$h"; done
  rm -rf "$work"
}
trap cleanup EXIT
export BERTH_STORE=$work/store BERTH_NETWORK_DIR=$work/net BERTH_DEFAULT_BRIDGE=$bridge
third=$((RANDOM % 200 + 20))
export BERTH_DEFAULT_SUBNET=10.215.$third.0/24
berth="node $PWD/apps/berth/dist/cli.cjs --root $work/state"
$berth run --rm --network none busybox true # the built-in image, made once

mkdir -p bench/results
node bench/vm/interleave.mjs bench/results/vm-network.json "$RUNS" \
  vm-none "$berth run --rm --backend vm --network none busybox true" \
  vm-bridge "$berth run --rm --backend vm --network bridge busybox true"
