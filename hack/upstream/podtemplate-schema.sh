#!/usr/bin/env bash
# Regenerates crates/core/src/revision/podtemplate-schema.json, the Go type tree of the pod
# template in the k8s.io/api version that the Flagger pinned by hack/upstream/flagger/go.mod is
# built with. Run it after changing that pin; serin's revision hash is Flagger's only when the two
# agree.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/../../crates/core/src/revision/podtemplate-schema.json"
(cd "$here/flagger" && go run ./podtemplate-schema) > "$out.partial"
mv "$out.partial" "$out"
echo "wrote $out"
