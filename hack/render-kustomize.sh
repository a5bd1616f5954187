#!/usr/bin/env bash
# Renders the Helm chart with its default values into the kustomize base
# (deploy/kustomize/serin.yaml), so that kustomize users get what the chart installs.
# With --check, fails if the committed file differs from the chart instead of writing it.
# Needs SERIN_HELM (the helm binary hack/upstream/helm.sh builds) or helm on the PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
helm="${SERIN_HELM:-$(command -v helm || true)}"
[[ -x "$helm" ]] || { echo "error: helm not found: run hack/upstream/helm.sh and set SERIN_HELM to the helm it built" >&2; exit 1; }
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
{
  echo "# Rendered from deploy/helm/serin with its default values by hack/render-kustomize.sh; do not edit."
  "$helm" template serin deploy/helm/serin --namespace serin-system --kube-version 1.36.0
} >"$rendered"
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -u deploy/kustomize/serin.yaml "$rendered"; then
    echo "error: deploy/kustomize/serin.yaml differs from the chart: run hack/render-kustomize.sh" >&2
    exit 1
  fi
  if ! cmp -s deploy/crds/crds.yaml deploy/helm/serin/crds/crds.yaml; then
    echo "error: deploy/helm/serin/crds/crds.yaml differs from deploy/crds/crds.yaml: copy it" >&2
    exit 1
  fi
else
  cp "$rendered" deploy/kustomize/serin.yaml
  cp deploy/crds/crds.yaml deploy/helm/serin/crds/crds.yaml
fi
