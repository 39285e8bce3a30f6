#!/usr/bin/env bash
# Pull + unpack of one multi-layer image from a loopback docker-registry: berth vs skopeo copy + umoci unpack,
# measured in one run with hyperfine, reported as a ratio. Needs: docker-registry skopeo umoci hyperfine
# (Debian packages) and a built workspace (npx turbo run build --filter=@berth/rootfs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${RUNS:-5}
layers=${LAYERS:-"/usr/share/doc /usr/bin /usr/lib/python3"}
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-pull.XXXXXX")
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port, secret: bench}
YAML
docker-registry serve "$work/registry.yml" 2>"$work/registry.log" &
registry_pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

ref="127.0.0.1:$port/bench/pull:v1"
(cd "$here" && node push-image.mjs "127.0.0.1:$port" bench/pull:v1 $layers)

hyperfine --runs "$runs" --warmup 1 --export-json "$work/result.json" \
  --prepare "rm -rf $work/berth $work/oci $work/bundle" \
  -n berth "node $here/berth-pull.mjs $ref $work/berth/store $work/berth/rootfs" \
  -n skopeo+umoci "skopeo copy -q --src-tls-verify=false docker://$ref oci:$work/oci:v1 && umoci unpack --image $work/oci:v1 $work/bundle"

python3 - "$work/result.json" <<'PY'
import json, sys
r = {x['command']: x['mean'] for x in json.load(open(sys.argv[1]))['results']}
b, s = r['berth'], r['skopeo+umoci']
print(f"berth {b:.2f}s  skopeo+umoci {s:.2f}s  ratio berth/(skopeo+umoci) = {b / s:.2f}  ({'faster' if b < s else 'slower'})")
PY
