#!/usr/bin/env bash
# Network attach time: berth against the CNI bridge plugin doing the same, as a ratio.
# Needs root, containernetworking-plugins (Debian), nftables, and a built @berth/network
# (npx turbo run build --filter=@berth/network). ROUNDS=N (default 20).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec node "$here/attach.mjs" "${ROUNDS:-20}"
