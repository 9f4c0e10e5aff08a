#!/usr/bin/env bash
# Builds the Jaeger v2 all-in-one binary from the tools module in
# tools/jaeger (Go module tag v1.76.0 = Jaeger v2.13.0) into a cache outside
# the repository, once; later runs reuse it. Prints nothing on a cache hit.
#
# What it adds, measured on 2 shared cores with an empty module cache:
# 5–8 minutes (7m24s wall, 5m45s CPU), a 121 MB binary, and about 0.9 GB of
# module source (322 modules) in Go's module cache, plus build cache.
#
# The binary has no Jaeger UI: `/` serves Jaeger's placeholder page. The UI
# is embedded only when Jaeger is built from its repository after building
# the jaeger-ui project with npm; the Go module ships an empty assets
# directory, the npm package name jaeger-ui has no published version, and no
# other registry reachable here carries the built UI. The query API (what
# verify-traces reads) is complete. examples/jaeger.yaml serves a built UI
# from $JAEGER_UI_ASSETS when you have one (docs/mesh.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
out="$cache/jaeger-v1.76.0/jaeger"
if [ -x "$out" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
echo "install-jaeger: building Jaeger v2.13.0 into $out (5–8 minutes on 2 cores)" >&2
cd "$root/tools/jaeger"
# go.sum is committed, so the build verifies against it and needs no
# checksum-database look-up.
CGO_ENABLED=0 go build -trimpath -o "$out.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
mv "$out.tmp" "$out"
echo "install-jaeger: Jaeger at $out ($(($(stat -c %s "$out") / 1000000)) MB, ${SECONDS}s)" >&2
