#!/bin/bash
# Test-harness shim for running crun's tests against runc-CLI runtimes.
# - strips crun-only global flag "--cgroup-manager X" (systemd -> --systemd-cgroup)
# - strips crun-only "run/create --config FILE" when FILE is the bundle's ./config.json (the default); other values pass through.
out=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cgroup-manager) shift; [ "$1" = systemd ] && out+=(--systemd-cgroup); shift; continue;;
    --cgroup-manager=*) [ "${1#*=}" = systemd ] && out+=(--systemd-cgroup); shift; continue;;
    --config)
      if [ "$(realpath -m "$2")" = "$(realpath -m "$PWD/config.json")" ]; then shift 2; continue; fi;;
  esac
  out+=("$1"); shift
done
# berth treats "run ID" without -b as an image reference (documented design); add "-b ." for the runc meaning
if [ -n "$SHIM_ADD_BUNDLE" ]; then
  has_b=; cmd=; for a in "${out[@]}"; do case "$a" in -b|--bundle|-b=*|--bundle=*) has_b=1;; esac; done
  skip=; for i in "${!out[@]}"; do a="${out[$i]}"
    if [ -n "$skip" ]; then skip=; continue; fi
    case "$a" in --root|--log|--log-format|--criu|--rootless) skip=1; continue;; -*) continue;; esac
    if [ "$a" = run ] && [ -z "$has_b" ]; then out=("${out[@]:0:$((i+1))}" -b . "${out[@]:$((i+1))}"); fi; break
  done
fi
[ -n "$SHIM_LOG" ] && echo "$REAL_RUNTIME ${out[*]}" >> "$SHIM_LOG"
exec "$REAL_RUNTIME" "${out[@]}"
