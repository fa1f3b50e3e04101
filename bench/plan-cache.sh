#!/bin/bash
# Usage: [RUNS=30] bench/plan-cache.sh
# What planning costs a `run` of podman's config (tests/data/config/podman-run.json, its binds
# pointed at files here), read from `ferrun run --profile=json`: planned from scratch (an empty
# cache each time), a new shape with the seccomp filter cached (the config and its template both
# planned, checked against each other, and the template stored), filled in from a template (a new container id, netns uuid and creation
# time each run, as podman writes them), and read whole (the same config again). Prints the
# median of the plan phase and of the whole run for each.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for tool in jq python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 1; }
done
(cd "$repo" && cargo build --release -q)
ferrun=$repo/target/$(rustc --print host-tuple)/release/ferrun
tmp=$(mktemp -d /tmp/ferrun-plan-cache.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$repo/demo/make-bundle.sh" "$tmp/demo" >/dev/null
fixture=$repo/tests/data/config/podman-run.json
old_id=$(jq -r '.linux.cgroupsPath' "$fixture" | sed 's/.*libpod-//')
old_uuid=$(jq -r '.linux.namespaces[] | select(.type == "network") | .path' "$fixture" | sed 's/.*netns-//')
old_created=$(jq -r '.annotations["io.kubernetes.cri-o.Created"]' "$fixture")

# A container of podman's shape: its own id, uuid and time; its bundle and bind sources
# under a directory named by the id, as podman's are.
container() {
    local id uuid dir
    id=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
    uuid=$(cat /proc/sys/kernel/random/uuid)
    dir=$tmp/c/$id/userdata
    mkdir -p "$dir/shm"
    for f in resolv.conf hosts hostname .containerenv; do : >"$dir/$f"; done
    sed -e "s/$old_id/$id/g" -e "s/${old_id:0:12}/${id:0:12}/g" -e "s/$old_uuid/$uuid/g" \
        -e "s/$old_created/$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)/" "$fixture" |
        jq --arg rootfs "$tmp/demo/rootfs" --arg files "$dir" -f "$repo/bench/podman-config.jq" \
            >"$dir/config.json"
    echo "$dir"
}

profile() { # root bundle: one run's JSON profile on stderr
    "$ferrun" --root "$1" run --profile=json --bundle "$2" "$(basename "$(dirname "$2")" | cut -c1-12)" 2>&1 >/dev/null | tail -n 1
}

runs=${RUNS:-30}
: >"$tmp/planned" ; : >"$tmp/warm" ; : >"$tmp/template" ; : >"$tmp/whole"
same=$(container)
profile "$tmp/root-whole" "$same" >/dev/null
profile "$tmp/root-template" "$(container)" >/dev/null
profile "$tmp/root-warm" "$(container)" >/dev/null
for _ in $(seq "$runs"); do
    rm -rf "$tmp/root-planned" "$tmp/root-warm/@cache/plans"
    profile "$tmp/root-planned" "$(container)" >>"$tmp/planned"
    profile "$tmp/root-warm" "$(container)" >>"$tmp/warm"
    profile "$tmp/root-template" "$(container)" >>"$tmp/template"
    profile "$tmp/root-whole" "$same" >>"$tmp/whole"
done
python3 - "$tmp" <<'PY'
import json, statistics, sys
tmp = sys.argv[1]
print("| plan | plan phase, median (ms) | whole run, median (ms) |")
print("| --- | --- | --- |")
for mode, name in [("planned", "planned (empty cache)"), ("warm", "new shape: planned twice, template stored (filter cached)"), ("template", "template filled in"), ("whole", "whole plan read")]:
    rows = [json.loads(l) for l in open(f"{tmp}/{mode}") if l.startswith("{")]
    plan = [p["ms"] for r in rows for p in r["phases"] if p["phase"].startswith("plan")]
    total = [r["total_ms"] for r in rows]
    print(f"| {name} | {statistics.median(plan):.3f} | {statistics.median(total):.3f} |")
PY
