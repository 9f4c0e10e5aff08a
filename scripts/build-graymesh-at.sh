#!/usr/bin/env bash
# Builds bin/graymesh as it was at a git revision (default: where this
# branch left main), into OUT: make bench-ir measures the ext_proc inner
# hop that graymesh served before inner hops verified lanes in Envoy.
# Usage: scripts/build-graymesh-at.sh REV OUT
set -euo pipefail
rev="${1:?revision}"
out="${2:?output path}"
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
git -C "$root" archive "$rev" | tar -x -C "$src"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
(cd "$src" && CGO_ENABLED=0 go build -o "$out" ./cmd/graymesh)
echo "build-graymesh-at: graymesh at $(git -C "$root" rev-parse --short "$rev") in $out" >&2
