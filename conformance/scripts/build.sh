#!/usr/bin/env bash
# Builds the checker that runs inside every conformance container: static, so
# it needs nothing from the rootfs (and runs as a hook on the host too).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
cc=${CC:-gcc}
"$cc" -static -O2 -Wall -Wextra -o dist/checker.tmp native/checker.c
mv dist/checker.tmp dist/checker
