#!/usr/bin/env bash
# Builds the Helm CLI (helm.sh/helm/v4, pinned in the tools module
# tools/helm) into a cache outside the repository, once, and prints its
# path. The chart's tests (manifests/chart_test.go) run it: helm lint
# --strict and helm template. About 3 minutes of CPU the first time.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
version=$(awk '/helm.sh\/helm\/v4 v/ {print $NF}' "$root/tools/helm/go.mod")
out="$cache/helm-$version/helm"
if [ ! -x "$out" ]; then
  mkdir -p "$(dirname "$out")"
  echo "install-helm: building helm $version into $out" >&2
  cd "$root/tools/helm"
  CGO_ENABLED=0 go build -trimpath -o "$out.tmp" helm.sh/helm/v4/cmd/helm
  mv "$out.tmp" "$out"
fi
echo "$out"
