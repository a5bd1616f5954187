#!/usr/bin/env bash
# Builds Flagger (the conformance oracle and benchmark baseline) from the Go module proxy at the
# version hack/upstream/flagger/go.mod pins, with its CRDs from the same module, into a cache
# outside the work tree keyed by the pins. Prints the directory holding `flagger` and `crd.yaml`.
# A second run with the same pins only prints the directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "github.com/fluxcd/flagger" { print $2 }' "$here/flagger/go.mod")"
if [[ -z "$version" ]]; then
  echo "error: could not read the pinned github.com/fluxcd/flagger version from hack/upstream/flagger/go.mod" >&2
  exit 1
fi
pins_hash="$(cat "$here/flagger.sh" "$here/flagger/go.mod" "$here/flagger/go.sum" | sha256sum | cut -c1-10)"
cache_root="${SERIN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/serin}"
out="$cache_root/flagger-$version-$pins_hash"

if [[ -x "$out/flagger" && -f "$out/crd.yaml" ]]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain (go >= 1.26) is needed to build Flagger $version for the conformance tests; install it and retry" >&2
  exit 1
fi

log() { echo "[flagger] $*" >&2; }
started=$(date +%s)
mkdir -p "$out.partial"
log "building Flagger $version (cold: about 3 min on 2 cores)"
(cd "$here/flagger" && GOFLAGS="-trimpath -buildvcs=false" go build -ldflags "-s -w" -o "$out.partial/" \
  github.com/fluxcd/flagger/cmd/flagger) >&2
module_dir="$(cd "$here/flagger" && go list -m -f '{{.Dir}}' github.com/fluxcd/flagger)"
[[ -f "$module_dir/artifacts/flagger/crd.yaml" ]] || { echo "error: github.com/fluxcd/flagger@$version has no artifacts/flagger/crd.yaml" >&2; exit 1; }
cp "$module_dir/artifacts/flagger/crd.yaml" "$out.partial/crd.yaml"
chmod u+w "$out.partial/crd.yaml"
rm -rf "$out"
mv "$out.partial" "$out"
find "$cache_root" -maxdepth 1 -name 'flagger-*' ! -name "$(basename "$out")" -exec rm -rf {} +
log "done in $(( $(date +%s) - started ))s: $out"
echo "$out"
