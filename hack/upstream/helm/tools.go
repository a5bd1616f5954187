//go:build tools

// Pins Helm's command for `go build helm.sh/helm/v3/cmd/helm` (hack/upstream/helm.sh).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
