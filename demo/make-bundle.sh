#!/bin/bash
# Usage: demo/make-bundle.sh DIR
# Builds an OCI bundle in DIR: a busybox rootfs (Debian's busybox-static) and demo/config.json.
# Safe to re-run on an existing DIR.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
busybox=/bin/busybox

if ! "$busybox" --list >/dev/null 2>&1; then
    echo "$0: $busybox missing or not runnable: apt-get install busybox-static" >&2
    exit 1
fi
# A dynamically linked busybox would need its libraries inside the rootfs.
if ldd "$busybox" >/dev/null 2>&1; then
    echo "$0: $busybox is dynamically linked: install busybox-static" >&2
    exit 1
fi

rootfs=$dir/rootfs
mkdir -p "$rootfs/bin" "$rootfs"/{proc,sys,dev,tmp,etc,root}
chmod 1777 "$rootfs/tmp"
# --remove-destination: never write through a leftover symlink named busybox.
cp --remove-destination "$busybox" "$rootfs/bin/busybox"
chmod 0755 "$rootfs/bin/busybox"
# Skip the applet "busybox": its link would replace the binary with a self-loop.
"$busybox" --list | while read -r applet; do
    [ "$applet" = busybox ] && continue
    ln -sfn busybox "$rootfs/bin/$applet"
done

# config.json says ociVersion 1.0.2, not ferrun spec's 1.2.0: crun 1.8.1 rejects 1.2.0
# ("unknown version specified") and bench/bench.sh runs this same bundle under crun and runc.
cp "$here/config.json" "$dir/config.json"
