#!/usr/bin/env bash
# Runs the serin demo on a fresh machine: installs what is missing, builds the upstream
# Kubernetes binaries (cached), builds serin, then `serin demo` brings up a local control plane
# (kwok simulates the pods) and initializes the example Canary. Extra arguments go to `serin demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/lib.sh
trap print_durations EXIT

prepare

stage "building serin"
cargo build --locked -p serin

stage "serin demo"
"${CARGO_TARGET_DIR:-target}/debug/serin" demo "$@"
