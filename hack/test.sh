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
prepare_helm

stage "helm lint and template; the kustomize base and the chart's CRDs match the chart"
"$SERIN_HELM" lint --strict --kube-version 1.36.0 deploy/helm/serin deploy/helm/serin-loadtester
"$SERIN_HELM" template serin deploy/helm/serin --kube-version 1.36.0 \
  --set leaderElection.enabled=true,leaderElection.replicaCount=2,namespace=apps,serviceMonitor.enabled=true >/dev/null
hack/render-kustomize.sh --check

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "the production binary (no default features) links no test environment"
cargo build --locked -p serin --no-default-features
if cargo tree --locked -p serin --no-default-features -e normal | grep -q serin-testenv; then
  fail "serin without default features still depends on serin-testenv"
fi

stage "cargo build --tests"
cargo test --workspace --locked --no-run

stage "cargo test (unit, component and cluster tests)"
cargo test --workspace --locked

# The load tester's payload parsers under libFuzzer (cargo fuzz, on the stable toolchain without
# a sanitizer: the code is safe Rust, what is sought is a panic), for a fixed time, in the dev
# profile so that arithmetic overflows panic too. A panic fails the run and leaves the input in
# crates/loadtester/fuzz/artifacts.
stage "fuzzing the load tester's payload parsers (${SERIN_FUZZ_SECONDS:-60} s)"
prepare_cargo_fuzz
(cd crates/loadtester/fuzz && "$SERIN_CARGO_FUZZ" fuzz run payload --dev --sanitizer none -- \
  -max_total_time="${SERIN_FUZZ_SECONDS:-60}" -print_final_stats=1)

# What the Dockerfile builds: glibc linked statically, without the demo.
stage "release build of the static production binary (as the Dockerfile does)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --no-default-features \
  --target x86_64-unknown-linux-gnu --bin serin
release_binary="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/serin"
ldd "$release_binary" 2>&1 | grep -q "statically linked" || fail "$release_binary is not statically linked"
"$release_binary" --version
"$release_binary" crds | grep -q "kind: CustomResourceDefinition" || fail "$release_binary crds printed no CRD"
ls -l "$release_binary"
