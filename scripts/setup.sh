#!/usr/bin/env bash
# Sets up berth on a fresh Debian (12+) machine, as root: the system packages
# the runtime and its tests use, the npm dependencies, and the build (which
# compiles the native launcher with the system C compiler).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (sudo $0): berth creates namespaces, mounts and cgroups" >&2
  exit 1
fi

# runtime: musl-tools + linux-libc-dev (@berth/sys's prebuilt static launcher, built reproducibly),
#          gcc (the launcher built at first use where there is no prebuilt one), busybox-static (the built-in image), iproute2, procps (berth ps)
# tests: python3 (terminal tests), runc (berth spec is compared with runc spec),
#        docker-registry + apache2-utils + openssl (a registry on loopback), zstd (zstd layers)
# bench: runc, crun, hyperfine, skopeo, umoci
# vm backend: qemu-system-x86 (the microVM), musl-tools + linux-libc-dev (the static guest
#             agent and launcher), xz-utils (unpacking the guest kernel apt-get downloads)
# clients: podman, containerd, iptables (podman's bridge), util-linux (unshare in the conformance suite),
#          libdevmapper1.02.1 (a library Debian's dockerd links; dockerd itself is unpacked below),
#          uidmap + slirp4netns (rootless berth and rootless podman's network),
#          systemd (the systemd cgroup driver's tests start a system and a user manager of their own)
# guest tests: apparmor (apparmor_parser, which the cgroup v2 guest's AppArmor tests run from the
#              host's root filesystem), selinux-policy-default (the SELinux guest's policy)
packages=(gcc libc6-dev busybox-static iproute2 procps python3 runc crun hyperfine
  docker-registry apache2-utils openssl zstd skopeo umoci ca-certificates
  nftables containernetworking-plugins wget
  podman containerd iptables util-linux libseccomp2 libdevmapper1.02.1
  qemu-system-x86 musl-tools linux-libc-dev xz-utils uidmap slirp4netns systemd
  selinux-policy-default apparmor)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# selinux-policy-default: the policy packages/vm/test/selinux-host.test.ts loads in its guest
# (policy files only: SELinux stays off on this host, nothing runs selinux-activate or edits grub)
# the Debian registry package starts a system service we do not use: tests run their own
systemctl disable --now docker-registry >/dev/null 2>&1 || true

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: berth needs Node.js 20 or newer" >&2
  exit 1
fi

npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
# the VM backend's guest kernel (the distribution's, fetched with apt-get download, not
# installed) and its static guest agent, cached under /var/lib/berth/vm
# (apt-get download needs package lists, which a machine that had every package may lack)
ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get update -qq
node packages/vm/scripts/prepare.mjs
# docker, a client test (apps/berth/test/clients/docker.test.ts): Debian's dockerd and docker CLI,
# and tini (docker-init), unpacked under /var/lib/berth/docker, not installed: no docker service
# starts on this machine (no docker0 bridge, no firewall rules); the test runs a daemon of its own
dockerdir=/var/lib/berth/docker
if [ ! -x "$dockerdir/usr/sbin/dockerd" ] || [ ! -x "$dockerdir/usr/bin/docker-init" ]; then
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true # apt-get download fetches as the _apt user
  (cd "$tmp" && apt-get download -q docker.io tini >/dev/null)
  rm -rf "$dockerdir.tmp"
  mkdir -p "$dockerdir.tmp"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dockerdir.tmp"; done
  rm -rf "$dockerdir" "$tmp"
  mv "$dockerdir.tmp" "$dockerdir"
fi
echo "setup: done. Try: npx berth run busybox echo hello"
