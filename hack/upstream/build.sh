#!/usr/bin/env bash
# Builds the upstream binaries that serin's tests and demo run against (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok) from the Go module proxy, into a cache
# outside the work tree keyed by the pinned versions. Prints the directory holding them.
# A second run with the same pins only prints the directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pinned() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2 } $1 == "require" && $2 == m { print $3 }' "$2"; }
k8s_version="$(pinned k8s.io/kubernetes "$here/kubernetes/go.mod")"
kwok_version="$(pinned sigs.k8s.io/kwok "$here/kwok/go.mod")"
if [[ -z "$k8s_version" || -z "$kwok_version" ]]; then
  echo "error: could not read the pinned k8s.io/kubernetes and sigs.k8s.io/kwok versions from hack/upstream/*/go.mod" >&2
  exit 1
fi
pins_hash="$(cat "$here"/build.sh "$here"/kubernetes/go.mod "$here"/kubernetes/go.sum "$here"/kubernetes/etcd/main.go \
  "$here"/kwok/go.mod "$here"/kwok/go.sum | sha256sum | cut -c1-10)"
cache_root="${SERIN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/serin}"
out="$cache_root/upstream-k8s-$k8s_version-kwok-$kwok_version-$pins_hash"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
# kwok's own stage definitions: nodes become Ready and keep heartbeating, pods become Ready and
# are removed when deleted.
kwok_stages=(node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)

# Upstream CRDs installed in the test cluster, by Go module and the folder holding them.
gateway_api_version=v1.4.1
keda_version=v2.21.0
istio_api_version=v1.32.0
upstream_crds=(
  "gateway-api sigs.k8s.io/gateway-api@$gateway_api_version config/crd/standard"
  "keda github.com/kedacore/keda/v2@$keda_version config/crd/bases"
  "istio istio.io/api@$istio_api_version kubernetes"
)

complete() {
  for b in "${binaries[@]}"; do [[ -x "$out/$b" ]] || return 1; done
  for s in "${kwok_stages[@]}"; do [[ -f "$out/kwok-stages/$(basename "$s")" ]] || return 1; done
  for entry in "${upstream_crds[@]}"; do
    read -r name _ _ <<<"$entry"
    compgen -G "$out/crds/$name/*.yaml" >/dev/null || return 1
  done
}

if complete; then
  echo "$out"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain (go >= 1.26) is needed to build the upstream Kubernetes binaries; install it and retry" >&2
  exit 1
fi

log() { echo "[upstream] $*" >&2; }
mkdir -p "$out.partial"
export GOFLAGS="-trimpath -buildvcs=false"
started=$(date +%s)

minor="${k8s_version#v1.}"; minor="${minor%%.*}"
version_pkg=k8s.io/component-base/version
ldflags="-s -w -X $version_pkg.gitVersion=$k8s_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean"

log "building etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $k8s_version (cold: about 5 min on 2 cores)"
(cd "$here/kubernetes" && go build -ldflags "$ldflags" -o "$out.partial/" \
  ./etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl) >&2
log "kubernetes components built after $(( $(date +%s) - started ))s"

log "building kwok $kwok_version"
(cd "$here/kwok" && go build -ldflags "-s -w" -o "$out.partial/" sigs.k8s.io/kwok/cmd/kwok) >&2
log "kwok built after $(( $(date +%s) - started ))s"
kwok_dir="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
mkdir -p "$out.partial/kwok-stages"
for s in "${kwok_stages[@]}"; do cp "$kwok_dir/kustomize/stage/$s" "$out.partial/kwok-stages/"; done

for entry in "${upstream_crds[@]}"; do
  read -r name module folder <<<"$entry"
  log "fetching the $name CRDs from $module"
  module_dir="$(go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$module_dir/$folder" ]] || { echo "error: $module has no $folder" >&2; exit 1; }
  mkdir -p "$out.partial/crds/$name"
  cp "$module_dir/$folder"/*.yaml "$out.partial/crds/$name/"
done

rm -rf "$out"
mv "$out.partial" "$out"
complete || { echo "error: the build finished but $out lacks one of: ${binaries[*]}" >&2; exit 1; }
find "$cache_root" -maxdepth 1 -name 'upstream-*' ! -name "$(basename "$out")" -exec rm -rf {} +
log "done in $(( $(date +%s) - started ))s: $out"
echo "$out"
