//go:build tools

// Package tools pins the Helm CLI for scripts/install-helm.sh.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
