#!/usr/bin/env bash
# Runs the tests again on host variants made in a private mount namespace (as root; the host's own
# cgroup mounts are never touched: every mount below exists only in that namespace and goes with it).
#
#   no-cgroup2-controllers   the cgroup2 hierarchy lists no controllers: an empty file bound read-only
#                            over its root's cgroup.controllers and cgroup.subtree_control (what the
#                            cgroups driver reads to decide what it may enable)
#   v2-only                  /sys/fs/cgroup is a cgroup2 mount, as on Debian 12+, Ubuntu 22.04+, Fedora
#                            (on a hybrid host the v1-bound controllers stay unavailable to it, so tests
#                            that need them fail naming the missing controller: that is the point)
#
# usage: scripts/test-host-variants.sh VARIANT [vitest args...]   (default args: the whole suite)
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:?usage: $0 no-cgroup2-controllers|v2-only [vitest args...]}
shift
[ "$#" -gt 0 ] || set -- .
empty=$(mktemp)
trap 'rm -f "$empty"' EXIT
case "$variant" in
  no-cgroup2-controllers)
    exec unshare -m --propagation private sh -euc '
      empty=$1; shift
      u=$(awk "\$9 == \"cgroup2\" { print \$5; exit }" /proc/self/mountinfo)
      [ -n "$u" ] || { echo "no cgroup2 mount on this host" >&2; exit 1; }
      for f in cgroup.controllers cgroup.subtree_control; do
        mount --bind "$empty" "$u/$f"
        mount -o remount,bind,ro "$u/$f"
      done
      echo "cgroup2 at $u lists: [$(cat "$u/cgroup.controllers")]" >&2
      exec npx vitest run "$@"' sh "$empty" "$@"
    ;;
  v2-only)
    exec unshare -m --propagation private sh -euc '
      mount -t cgroup2 none /sys/fs/cgroup
      echo "/sys/fs/cgroup: $(stat -f -c %T /sys/fs/cgroup), controllers [$(cat /sys/fs/cgroup/cgroup.controllers)]" >&2
      exec npx vitest run "$@"' sh "$@"
    ;;
  *)
    echo "unknown variant $variant" >&2
    exit 2
    ;;
esac
