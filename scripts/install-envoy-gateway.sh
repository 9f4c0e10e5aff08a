#!/usr/bin/env bash
# Builds Envoy Gateway (github.com/envoyproxy/gateway, the version whose
# CRDs the tests install) into a cache outside the repository, once, and
# prints its path. e2e TestEnvoyGatewayAsksGraymesh runs it standalone
# (resources from files, Envoy as a host process: the project's Envoy).
# Built with the module's own go.mod (go install module@version). About
# 5 minutes of CPU the first time.
set -euo pipefail
version=v1.9.1
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
out="$cache/envoy-gateway-$version/envoy-gateway"
if [ ! -x "$out" ]; then
  mkdir -p "$(dirname "$out")"
  echo "install-envoy-gateway: building envoy-gateway $version into $out" >&2
  GOBIN="$(dirname "$out")" CGO_ENABLED=0 go install -trimpath "github.com/envoyproxy/gateway/cmd/envoy-gateway@$version"
fi
echo "$out"
