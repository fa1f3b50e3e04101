#!/bin/bash
# Usage: [ROUNDS=20] bench/cri.sh
# A pod's start through containerd's CRI (RunPodSandbox, CreateContainer, StartContainer) with
# the ferrun and the runc handler, taking turns: bench/cri.rs. ferrun is the release build.
# Needs root, containerd, runc and containernetworking-plugins.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cargo build --release
FERRUN_CRI_BIN="$repo/target/x86_64-unknown-linux-gnu/release/ferrun" \
  cargo bench --profile dev --bench cri
