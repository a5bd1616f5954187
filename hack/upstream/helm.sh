#!/usr/bin/env bash
# Builds Helm from its Go module (pinned in hack/upstream/helm/go.mod) into a cache outside the
# work tree, for `helm lint` and `helm template` of deploy/helm in the test command. Prints the
# directory holding the `helm` binary; a second run with the same pin only prints it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" { print $3 }' "$here/helm/go.mod")"
if [[ -z "$version" ]]; then
  echo "error: could not read the pinned helm.sh/helm/v3 version from hack/upstream/helm/go.mod" >&2
  exit 1
fi
pins_hash="$(cat "$here/helm.sh" "$here/helm/go.mod" "$here/helm/go.sum" | sha256sum | cut -c1-10)"
cache_root="${SERIN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/serin}"
out="$cache_root/helm-$version-$pins_hash"
if [[ -x "$out/helm" ]]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain (go >= 1.26) is needed to build Helm $version; install it and retry" >&2
  exit 1
fi
echo "[upstream] building helm $version (cold: 1 to 3 min on 2 cores)" >&2
started=$(date +%s)
mkdir -p "$out.partial"
(cd "$here/helm" && GOFLAGS="-trimpath -buildvcs=false" go build \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" \
  -o "$out.partial/" helm.sh/helm/v3/cmd/helm) >&2
rm -rf "$out"
mv "$out.partial" "$out"
echo "[upstream] helm built after $(( $(date +%s) - started ))s" >&2
echo "$out"
