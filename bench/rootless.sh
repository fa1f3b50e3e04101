#!/bin/bash
# Usage: [RUNS=100] bench/rootless.sh USER
# Times `run` of /bin/true from one rootless bundle (`ferrun spec --rootless`): ferrun as root,
# and ferrun, crun and runc as USER (who needs /etc/subuid ranges only for podman, not here),
# in one hyperfine run (ociVersion 1.0.2, which crun 1.8.1 takes), each command through the same setpriv, inside one private mount
# namespace where the cgroup2 mount is hidden (crun 1.8.1 refuses hybrid cgroups).
set -euo pipefail
user=${1:?usage: $0 USER}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${FERRUN_BENCH_HOST_MNTNS:-}" ]; then
    (cd "$repo" && cargo build --release)
    FERRUN_BENCH_HOST_MNTNS=$(readlink /proc/self/ns/mnt)
    export FERRUN_BENCH_HOST_MNTNS
    exec unshare -m --propagation private -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
[ "$(readlink /proc/self/ns/mnt)" != "$FERRUN_BENCH_HOST_MNTNS" ] || { echo "not in a private mount namespace" >&2; exit 1; }
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
uid=$(id -u "$user"); gid=$(id -g "$user")
tmp=$(mktemp -d /tmp/ferrun-bench-rootless.XXXXXX)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/proc" "$tmp/rootfs/sys" "$tmp/rootfs/dev"
cp /bin/busybox "$tmp/rootfs/bin/busybox"
ln -s busybox "$tmp/rootfs/bin/true"
ln -s busybox "$tmp/rootfs/bin/sh"
chown -R "$uid:$gid" "$tmp"
as() { echo "setpriv --reuid $1 --regid $2 --clear-groups"; }
setpriv --reuid "$uid" --regid "$gid" --clear-groups sh -c "cd $tmp && $repo/target/$(rustc --print host-tuple)/release/ferrun spec --rootless"
jq '.ociVersion="1.0.2" | .process.terminal=false | .process.args=["/bin/true"]' "$tmp/config.json" > "$tmp/c" && mv "$tmp/c" "$tmp/config.json"
chown "$uid:$gid" "$tmp/config.json"
f=$repo/target/$(rustc --print host-tuple)/release/ferrun
hyperfine -N --runs "${RUNS:-100}" --warmup 5 --export-json "$tmp/result.json" \
    -n "ferrun as root" "$(as 0 0) $f --root $tmp/s0 run -b $tmp bench" \
    -n "ferrun rootless" "$(as "$uid" "$gid") $f --root $tmp/s1 run -b $tmp bench" \
    -n "crun rootless" "$(as "$uid" "$gid") $(command -v crun) --root $tmp/s2 run -b $tmp bench" \
    -n "runc rootless" "$(as "$uid" "$gid") $(command -v runc) --root $tmp/s3 run -b $tmp bench" >&2
jq -r '.results[] | "\(.command)\t\(.mean * 1000 | . * 100 | round / 100) ms"' "$tmp/result.json"
jq -r '(.results | map({(.command): .mean}) | add) as $m |
  "ferrun rootless / ferrun as root: \($m["ferrun rootless"] / $m["ferrun as root"] * 100 | round / 100)",
  "ferrun rootless / crun rootless: \($m["ferrun rootless"] / $m["crun rootless"] * 100 | round / 100)",
  "ferrun rootless / runc rootless: \($m["ferrun rootless"] / $m["runc rootless"] * 100 | round / 100)"' "$tmp/result.json"
