#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 10s).
# A crasher is written to the package's testdata/fuzz/<Target>/ by go test
# and fails this script; commit it so it stays a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
found=0
for pkg in $(go list ./... | grep -v /e2e); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    found=$((found + 1))
    echo "fuzz: $pkg $target ($fuzztime)"
    # Quiet on success; on a failure show what go test said (the failing
    # input and where it was written), which CI would otherwise lose.
    # One retry when go test's fuzz coordinator gave up waiting on a worker
    # ("context deadline exceeded", no failing input): the toolchain's
    # deadline on a loaded machine, not a crasher.
    if ! out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" 2>&1) &&
      { ! grep -q 'context deadline exceeded' <<<"$out" || grep -q 'Failing input' <<<"$out" ||
        ! out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" 2>&1); }; then
      echo "$out" | grep -v '^fuzz: elapsed' | tail -40
      echo "fuzz: $pkg $target failed"
      exit 1
    fi
  done
done
echo "fuzz: $found targets, no crashers"
