#!/usr/bin/env bash
# Builds controller-gen (sigs.k8s.io/controller-tools, pinned in the tools
# module tools/controller-gen) into a cache outside the repository, once,
# and prints its path. Only `make crd` needs it: the generated CRD is
# committed, and a unit test checks it against the Go types.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
version=$(awk '/controller-tools v/ {print $NF}' "$root/tools/controller-gen/go.mod")
out="$cache/controller-gen-$version/controller-gen"
if [ ! -x "$out" ]; then
  mkdir -p "$(dirname "$out")"
  echo "install-controller-gen: building controller-gen $version into $out" >&2
  cd "$root/tools/controller-gen"
  CGO_ENABLED=0 go build -trimpath -o "$out.tmp" sigs.k8s.io/controller-tools/cmd/controller-gen
  mv "$out.tmp" "$out"
fi
echo "$out"
