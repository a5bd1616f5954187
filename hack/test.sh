#!/usr/bin/env bash
# Runs every test of serin on a fresh machine: installs what is missing, builds the upstream
# Kubernetes binaries (cached in ~/.cache/serin), checks format and lints, then runs the unit,
# component and cluster tests. Prints each stage's duration.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/lib.sh
trap print_durations EXIT

prepare

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "cargo build --tests"
cargo test --workspace --locked --no-run

stage "cargo test (unit, component and cluster tests)"
cargo test --workspace --locked
