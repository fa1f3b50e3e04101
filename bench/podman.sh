#!/bin/bash
# Usage: [RUNS=30] bench/podman.sh
# `podman run --rm --network none localhost/busybox true` with ferrun, runc and crun as podman's
# runtime, timed with hyperfine; each runtime call also goes through a wrapper that logs its
# wall time, so that the runtime's own share (create + start + delete) is reported apart from
# podman's. Needs root, podman, conmon, hyperfine, busybox-static; runs in a private mount
# namespace with /sys/fs/cgroup/unified unmounted (crun 1.8.1 refuses hybrid cgroups).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${FERRUN_BENCH_INNER:-}" ]; then
    (cd "$repo" && cargo build --release -q)
    FERRUN_BENCH_INNER=1 exec unshare -m --propagation private -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
tmp=$(mktemp -d /tmp/ferrun-podman-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
declare -A bin=([ferrun]="$repo/target/$(rustc --print host-tuple)/release/ferrun" [runc]=$(command -v runc) [crun]=$(command -v crun))
for rt in "${!bin[@]}"; do
    cat >"$tmp/wrap-$rt" <<W
#!/bin/bash
s=\$(date +%s%N); ${bin[$rt]} "\$@"; rc=\$?; e=\$(date +%s%N)
for a in "\$@"; do case "\$a" in create|start|delete) echo "\$((e-s)) \$a" >> $tmp/times-$rt; break;; esac; done
exit \$rc
W
    chmod +x "$tmp/wrap-$rt"
done
cat >"$tmp/wrap-true" <<W
#!/bin/bash
s=\$(date +%s%N); /bin/true "\$@"; e=\$(date +%s%N); echo "\$((e-s))" >> $tmp/times-true
W
chmod +x "$tmp/wrap-true"
cat >"$tmp/containers.conf" <<C
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "ferrun"]
[engine.runtimes]
ferrun = ["$tmp/wrap-ferrun"]
runc = ["$tmp/wrap-runc"]
crun = ["$tmp/wrap-crun"]
C
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/root"\nrunroot = "%s/runroot"\n' "$tmp" "$tmp" >"$tmp/storage.conf"
export CONTAINERS_CONF=$tmp/containers.conf CONTAINERS_STORAGE_CONF=$tmp/storage.conf
"$repo/demo/make-bundle.sh" "$tmp/bundle" >/dev/null
tar -C "$tmp/bundle/rootfs" -cf "$tmp/busybox.tar" .
podman import -q "$tmp/busybox.tar" localhost/busybox >/dev/null
for rt in ferrun runc crun; do podman --runtime "$rt" run --rm --network none localhost/busybox true; done
rm -f "$tmp"/times-*
args=()
for rt in ferrun runc crun; do
    args+=(-n "$rt" "podman --runtime $rt run --rm --network none localhost/busybox true")
done
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$tmp/hf.json" "${args[@]}" >&2
for i in $(seq 50); do "$tmp/wrap-true"; done
floor=$(awk '{t += $1} END {print t / NR / 1e6}' "$tmp/times-true")
echo "| runtime | podman run (ms) | create (ms) | start (ms) | delete (ms) | runtime total (ms) | minus wrapper floor (ms) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for rt in ferrun runc crun; do
    mean=$(jq -r --arg n "$rt" '.results[] | select(.command == $n) | .mean * 1000' "$tmp/hf.json")
    awk -v rt="$rt" -v mean="$mean" -v floor="$floor" '
        { t[$2] += $1; n[$2]++ }
        END {
            c = t["create"] / n["create"] / 1e6; s = t["start"] / n["start"] / 1e6; d = t["delete"] / n["delete"] / 1e6
            printf "| %s | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", rt, mean, c, s, d, c + s + d, c + s + d - 3 * floor
        }' "$tmp/times-$rt"
done
echo "(wrapper floor per call: ${floor} ms)"
