# Sourced by the bench scripts: make_bundle DIR ARGS_JSON makes a busybox bundle in DIR
# (runc's default config.json, no terminal) whose process runs ARGS_JSON.
make_bundle() {
  mkdir -p "$1/rootfs/bin" "$1/rootfs/proc" "$1/rootfs/dev" "$1/rootfs/sys"
  cp /bin/busybox "$1/rootfs/bin/busybox"
  ln -s busybox "$1/rootfs/bin/true"
  ln -s busybox "$1/rootfs/bin/sleep"
  runc spec -b "$1"
  node -e '
    const fs = require("fs"); const f = process.argv[1];
    const c = JSON.parse(fs.readFileSync(f, "utf8"));
    c.process.terminal = false; c.process.args = JSON.parse(process.argv[2]);
    fs.writeFileSync(f, JSON.stringify(c, null, 2));' "$1/config.json" "$2"
}
