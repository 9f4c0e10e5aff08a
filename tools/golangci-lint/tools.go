//go:build tools

// Package tools pins the golangci-lint command so go mod tidy keeps its
// dependencies.
package tools

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
