#!/usr/bin/env bash
# Installs the Prometheus server (Debian package `prometheus`) the e2e tests
# start to scrape real Envoys for the analysis's prometheus source.
# Idempotent: does nothing when a Prometheus already answers --version.
# Prints the binary's path on stdout and its version on stderr.
#
# The tests start their own server (a temporary config and data directory,
# loopback ports), never the package's system service.
#
# Needs root (or sudo) and apt-get. When it cannot install, it fails with
# what to do instead: an e2e test that silently skipped would hide a broken
# source. PROMETHEUS_BIN points at another Prometheus binary.
set -euo pipefail
name=install-prometheus

works() { # a binary that runs Prometheus: "prometheus, version 2.…"
  local v
  v="$("$1" --version 2>&1)" || return 1
  [[ "$v" == prometheus,\ version* ]]
}

found() {
  echo "$name: $("$1" --version 2>&1 | head -1)" >&2
  echo "$1"
  exit 0
}

for c in "${PROMETHEUS_BIN:-}" /usr/bin/prometheus; do
  if [ -n "$c" ] && [ -x "$c" ] && works "$c"; then
    found "$c"
  fi
done

fail() {
  cat >&2 <<MSG
$name: $1
  The prometheus analysis source's e2e test needs a Prometheus server.
  Install it as root:
    apt-get update && apt-get install -y --no-install-recommends prometheus
  or point PROMETHEUS_BIN at a Prometheus binary.
MSG
  exit 1
}

command -v apt-get >/dev/null || fail "no apt-get on this machine"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null && sudo -n true 2>/dev/null || fail "not root, and no password-less sudo"
  sudo=(sudo -n)
fi
echo "$name: installing Debian's prometheus (apt-get update, then the package)" >&2
start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >&2 || fail "apt-get update failed"
"${sudo[@]}" apt-get install -y -q --no-install-recommends prometheus >&2 || fail "apt-get install prometheus failed"
works /usr/bin/prometheus || fail "/usr/bin/prometheus does not run after the install"
echo "$name: installed in $((SECONDS - start)) s" >&2
found /usr/bin/prometheus
