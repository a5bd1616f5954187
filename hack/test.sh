#!/usr/bin/env bash
# Runs every test of serin on a fresh machine: installs what is missing, builds the upstream
# Kubernetes binaries and Flagger (cached in ~/.cache/serin), checks format and lints, then runs
# the unit, component, cluster and conformance (serin beside Flagger) tests. Prints each stage's
# duration.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/lib.sh
trap print_durations EXIT

prepare
prepare_flagger

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "cargo build --tests"
cargo test --workspace --locked --no-run

stage "cargo test (unit, component and cluster tests)"
cargo test --workspace --locked
