#!/bin/bash
# Usage: [RUNS=100] bench/bench.sh [--extra]
# Times `run` of ferrun, crun and runc on the same busybox bundle running /bin/true, with
# hyperfine, beside the floor (util-linux's unshare and chroot) and each runtime's `exec` into a
# running container; all in one private mount namespace. Prints a markdown table and the ratios;
# --extra adds peak RSS and syscall counts.
# Needs root, hyperfine, jq, busybox-static; crun, runc, strace and /usr/bin/time are optional.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extra=0
case "${1:-}" in
    --extra) extra=1 ;;
    "") ;;
    *) echo "usage: [RUNS=N] $0 [--extra]" >&2; exit 2 ;;
esac

# crun 1.8.1 refuses hybrid cgroups ("drop all controllers from cgroupv2"), so the comparison
# runs in a private mount namespace where the cgroup2 mount is hidden. We remember the host's
# namespace so that the umount below can never happen in it.
if [ -z "${FERRUN_BENCH_HOST_MNTNS:-}" ]; then
    for tool in hyperfine jq unshare; do
        command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 1; }
    done
    (cd "$repo" && cargo build --release)
    FERRUN_BENCH_HOST_MNTNS=$(readlink /proc/self/ns/mnt)
    export FERRUN_BENCH_HOST_MNTNS
    exec unshare -m --propagation private -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
if [ "$(readlink /proc/self/ns/mnt)" = "$FERRUN_BENCH_HOST_MNTNS" ]; then
    echo "$0: not in a private mount namespace; refusing to unmount cgroup2" >&2
    exit 1
fi
if mountpoint -q /sys/fs/cgroup/unified; then
    umount /sys/fs/cgroup/unified
fi

# hyperfine -N splits its commands on whitespace, so no path in them may hold any.
case "$repo" in *[[:space:]]*) echo "$0: the repository path must not contain whitespace" >&2; exit 1 ;; esac
tmp=$(mktemp -d /tmp/ferrun-bench.XXXXXX)
id=bench
declare -A bin=([ferrun]="$repo/target/$(rustc --print host-tuple)/release/ferrun" [crun]=$(command -v crun || true) [runc]=$(command -v runc || true))
cleanup() {
    for rt in "${!bin[@]}"; do
        [ -n "${bin[$rt]}" ] && "${bin[$rt]}" --root "$tmp/root-$rt" delete -f "$id" >/dev/null 2>&1 || true
        [ -n "${bin[$rt]}" ] && "${bin[$rt]}" --root "$tmp/root-$rt" delete -f sleeper >/dev/null 2>&1 || true
    done
    umount "$tmp/ro" 2>/dev/null || true
    "$tmp/ro/ferrun" --root "$tmp/root-ferrun-ro" delete -f "$id" >/dev/null 2>&1 || true
    rm -rf "$tmp"
    find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name ferrun-bench -exec rmdir {} + 2>/dev/null || true
}
trap cleanup EXIT

bundle=$tmp/bundle
"$repo/demo/make-bundle.sh" "$bundle"
jq '.process.args = ["/bin/true"]' "$bundle/config.json" >"$tmp/config.json"
mv "$tmp/config.json" "$bundle/config.json"

# podman's generated config (seccomp profile, masks, binds, rlimits) on the same rootfs: its
# bind sources and netns exist only where podman made it, so they are swapped for ours.
podman=$tmp/podman
mkdir -p "$podman/files/shm"
for f in resolv.conf hosts hostname .containerenv; do : >"$podman/files/$f"; done
jq --arg rootfs "$bundle/rootfs" --arg files "$podman/files" -f "$repo/bench/podman-config.jq" \
    "$repo/tests/data/config/podman-run.json" >"$podman/config.json"

# The same with podman's cgroup settings kept (its resources, a cgroupsPath under a
# ferrun-bench parent, the cgroup mount): what cgroups cost ferrun.
podcg=$tmp/podman-cgroups
mkdir -p "$podcg"
jq --slurpfile full "$repo/tests/data/config/podman-run.json" '
    .linux.resources = $full[0].linux.resources
    | .linux.cgroupsPath = "/ferrun-bench/podman"
    | .mounts += [$full[0].mounts[] | select(.type == "cgroup")]
' "$podman/config.json" >"$podcg/config.json"

cmd() { echo "${bin[$1]} --root $tmp/root-$1 run --bundle ${2:-$bundle} $id"; }

# Each runtime must run the bundle twice in a row with the same id: that proves `run` deleted
# the container on exit, which the fixed id in the benchmark relies on.
runtimes=()
for rt in ferrun crun runc; do
    if [ -z "${bin[$rt]}" ]; then
        echo "skipping $rt: not installed" >&2
        continue
    fi
    if out=$($(cmd "$rt") 2>&1) && out=$($(cmd "$rt") 2>&1); then
        runtimes+=("$rt")
    else
        echo "skipping $rt: it failed on the bundle: $out" >&2
    fi
done
[ "${#runtimes[@]}" -gt 0 ] || { echo "$0: no runtime could run the bundle" >&2; exit 1; }

args=()
for rt in "${runtimes[@]}"; do
    args+=(-n "$rt" "$(cmd "$rt")")
done
# The podman config, for each runtime that accepts it (crun and runc compile its seccomp
# profile with libseccomp on every run; ferrun's plan cache holds the compiled filter).
for rt in "${runtimes[@]}"; do
    if out=$($(cmd "$rt" "$podman") 2>&1); then
        args+=(-n "$rt-podman" "$(cmd "$rt" "$podman")")
    else
        echo "skipping $rt on the podman config: $out" >&2
    fi
done
if [[ " ${runtimes[*]} " == *" ferrun "* ]]; then
    args+=(-n "ferrun-podman-cgroups" "$(cmd ferrun "$podcg")")
    # Installed on a read-only mount, ferrun needs no re-exec to protect its binary.
    mkdir -p "$tmp/ro"
    cp "${bin[ferrun]}" "$tmp/ro/ferrun"
    mount --bind "$tmp/ro" "$tmp/ro"
    mount -o remount,bind,ro "$tmp/ro"
    args+=(-n "ferrun-ro-install" "$tmp/ro/ferrun --root $tmp/root-ferrun-ro run --bundle $bundle $id")
fi
# The floor: the same namespaces and root, made by util-linux, with nothing else.
args+=(-n floor "unshare -m -u -i -n -p -f chroot $bundle/rootfs /bin/true")
# exec into a running container of each runtime.
sleeper=$tmp/sleeper
mkdir -p "$sleeper"
jq --arg rootfs "$bundle/rootfs" '.root.path = $rootfs | .process.args = ["sleep", "100000"]' \
    "$bundle/config.json" >"$sleeper/config.json"
for rt in "${runtimes[@]}"; do
    if "${bin[$rt]}" --root "$tmp/root-$rt" run -d --bundle "$sleeper" sleeper </dev/null >/dev/null 2>&1; then
        args+=(-n "$rt-exec" "${bin[$rt]} --root $tmp/root-$rt exec sleeper /bin/true")
    else
        echo "skipping $rt exec: run -d failed" >&2
    fi
done
# hyperfine's own report goes to stderr so stdout holds only the results.
hyperfine -N --warmup 10 --runs "${RUNS:-100}" --export-json "$tmp/hyperfine.json" "${args[@]}" >&2

echo
echo "| runtime | mean ± σ (ms) | median (ms) | min (ms) | max (ms) | user (ms) | system (ms) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
jq -r '.results[] | [.command, .mean, .stddev, .median, .min, .max, .user, .system] | @tsv' \
    "$tmp/hyperfine.json" |
    awk -F'\t' '{ printf "| %s | %.2f ± %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", $1, $2*1e3, $3*1e3, $4*1e3, $5*1e3, $6*1e3, $7*1e3, $8*1e3 }'
echo
mean() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .mean' "$tmp/hyperfine.json"; }
f=$(mean ferrun)
fp=$(mean ferrun-podman)
if [ -n "$fp" ] && [ -n "$f" ]; then
    awk -v a="$fp" -v b="$f" 'BEGIN { printf "ferrun-podman/ferrun: %.2f\n", a / b }'
fi
fr=$(mean ferrun-ro-install)
for rt in crun runc; do
    m=$(mean "$rt")
    if [ -n "$fr" ] && [ -n "$m" ]; then
        awk -v a="$fr" -v b="$m" -v rt="$rt" 'BEGIN { printf "ferrun-ro-install/%s: %.2f\n", rt, a / b }'
    fi
done
fc=$(mean ferrun-podman-cgroups)
if [ -n "$fp" ] && [ -n "$fc" ]; then
    awk -v a="$fc" -v b="$fp" 'BEGIN { printf "ferrun-podman-cgroups/ferrun-podman: %.2f\n", a / b }'
fi
for rt in crun runc; do
    m=$(mean "$rt-podman")
    if [ -n "$fp" ] && [ -n "$m" ]; then
        awk -v a="$fp" -v b="$m" -v rt="$rt" 'BEGIN { printf "ferrun-podman/%s-podman: %.2f\n", rt, a / b }'
    fi
done
for rt in crun runc; do
    m=$(mean "$rt")
    if [ -n "$f" ] && [ -n "$m" ]; then
        awk -v a="$f" -v b="$m" -v rt="$rt" 'BEGIN { printf "ferrun/%s: %.2f\n", rt, a / b }'
    else
        echo "ferrun/$rt: n/a"
    fi
done
fl=$(mean floor)
awk -v a="$f" -v b="$fl" 'BEGIN { printf "ferrun/floor: %.2f\n", a / b }'
fe=$(mean ferrun-exec)
for rt in crun runc; do
    m=$(mean "$rt-exec")
    if [ -n "$fe" ] && [ -n "$m" ]; then
        awk -v a="$fe" -v b="$m" -v rt="$rt" 'BEGIN { printf "ferrun-exec/%s-exec: %.2f\n", rt, a / b }'
    fi
done

[ "$extra" = 1 ] || exit 0
echo
# %M is the peak RSS of the largest process reaped under the runtime (runc's `runc init` counts).
if [ -x /usr/bin/time ]; then
    for rt in "${runtimes[@]}"; do
        /usr/bin/time -f %M -o "$tmp/rss" $(cmd "$rt") >/dev/null 2>&1 || true
        echo "peak RSS $rt: $(tail -n 1 "$tmp/rss") KiB"
    done
else
    echo "peak RSS: skipped, /usr/bin/time is not installed (apt-get install time)"
fi
if command -v strace >/dev/null; then
    declare -A calls
    for rt in "${runtimes[@]}"; do
        strace -f -c -o "$tmp/strace" $(cmd "$rt") >/dev/null 2>&1 || true
        calls[$rt]=$(awk '$NF == "total" { print $4 }' "$tmp/strace")
        echo "syscalls $rt: ${calls[$rt]}"
    done
    if [ -n "${calls[ferrun]:-}" ] && [ -n "${calls[crun]:-}" ]; then
        awk -v a="${calls[ferrun]}" -v b="${calls[crun]}" 'BEGIN { printf "syscalls ferrun/crun: %.2f\n", a / b }'
    fi
else
    echo "syscalls: skipped, strace is not installed"
fi
