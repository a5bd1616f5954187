# Shared by hack/test.sh and hack/demo.sh: stage timing and the checks for what they need.

stage_names=()
stage_seconds=()
current_stage=""
current_started=0

stage() {
  finish_stage
  current_stage="$1"
  current_started=$(date +%s)
  echo
  echo "==> $current_stage"
}

finish_stage() {
  if [[ -n "$current_stage" ]]; then
    stage_names+=("$current_stage")
    stage_seconds+=($(( $(date +%s) - current_started )))
    current_stage=""
  fi
}

print_durations() {
  finish_stage
  echo
  echo "stage durations:"
  local total=0
  for i in "${!stage_names[@]}"; do
    printf '  %5ss  %s\n' "${stage_seconds[$i]}" "${stage_names[$i]}"
    total=$(( total + stage_seconds[i] ))
  done
  printf '  %5ss  total\n' "$total"
}

fail() {
  echo "error: $*" >&2
  exit 1
}

# Rust (cargo >= 1.89, with rustfmt and clippy) and Go (>= 1.26, only to build the upstream
# Kubernetes binaries) cannot come from Debian's packages at these versions: name what is missing.
check_toolchains() {
  command -v cargo >/dev/null 2>&1 || fail "cargo not found: install Rust 1.89 or newer with rustup (https://rustup.rs)"
  local rust_minor
  rust_minor="$(cargo --version | sed -E 's/^cargo 1\.([0-9]+).*/\1/')"
  (( rust_minor >= 89 )) || fail "cargo $(cargo --version) is too old: serin needs Rust 1.89 or newer (rustup update stable)"
  command -v go >/dev/null 2>&1 || fail "go not found: Go 1.26 or newer is needed to build kube-apiserver, etcd and kwok for the local control plane"
  local go_minor
  go_minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
  (( go_minor >= 26 )) || fail "$(go env GOVERSION) is too old: building Kubernetes v1.36 needs Go 1.26 or newer"
}

# Debian packages the tests use, installed when missing.
install_debian_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  (( ${#missing[@]} == 0 )) && return 0
  command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: install these packages by hand: ${missing[*]}"
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq || fail "apt-get update failed; needed packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "apt-get install failed for: ${missing[*]}"
}

# The first stages of both README commands: toolchains, Debian packages, and the upstream
# binaries (exported as SERIN_UPSTREAM_BIN_DIR for testenv).
prepare() {
  stage "checking toolchains and Debian packages"
  check_toolchains
  install_debian_packages ca-certificates prometheus nginx-light graphite-carbon graphite-web influxdb openssl curl hey bats

  stage "building upstream etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok (cached for later runs)"
  SERIN_UPSTREAM_BIN_DIR="$(hack/upstream/build.sh)"
  export SERIN_UPSTREAM_BIN_DIR
  echo "$SERIN_UPSTREAM_BIN_DIR"
}

# Helm, built from its Go module (exported as SERIN_HELM for the install test).
prepare_helm() {
  stage "building Helm $(awk '$1 == "require" && $2 == "helm.sh/helm/v3" { print $3 }' hack/upstream/helm/go.mod) (cached for later runs)"
  SERIN_HELM="$(hack/upstream/helm.sh)/helm"
  export SERIN_HELM
  echo "$SERIN_HELM"
}

# cargo-fuzz from crates.io, installed once into the cache (exported as SERIN_CARGO_FUZZ).
CARGO_FUZZ_VERSION=0.13.2
prepare_cargo_fuzz() {
  local root="${SERIN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/serin}/cargo-fuzz-$CARGO_FUZZ_VERSION"
  if [[ ! -x "$root/bin/cargo-fuzz" ]]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $root"
    cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" --root "$root" cargo-fuzz \
      || fail "cargo install cargo-fuzz $CARGO_FUZZ_VERSION failed (it comes from crates.io)"
  fi
  SERIN_CARGO_FUZZ="$root/bin/cargo-fuzz"
  export SERIN_CARGO_FUZZ
}

# Flagger, the conformance suite's oracle, built from its Go module (exported as SERIN_FLAGGER_DIR).
prepare_flagger() {
  stage "building Flagger $(awk '$1 == "github.com/fluxcd/flagger" { print $2 }' hack/upstream/flagger/go.mod) (cached for later runs)"
  SERIN_FLAGGER_DIR="$(hack/upstream/flagger.sh)"
  export SERIN_FLAGGER_DIR
  echo "$SERIN_FLAGGER_DIR"
}
