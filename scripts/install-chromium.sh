#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) for the console's
# browser test. Idempotent: does nothing when a Chromium already answers
# --version. Prints the binary's path on stdout.
#
# The test drives Chromium over the DevTools protocol (chromedp, a Go
# module), so chromium-driver (WebDriver) is not needed.
#
# Needs root (or sudo) and apt-get. When it cannot install, it fails with
# what to do instead: a browser test that silently skipped would hide a
# broken console. CHROMIUM_BIN points at another Chromium or Chrome.
set -euo pipefail
name=install-chromium

works() { # a binary that runs headless-capable Chromium: "Chromium 1xx…"
  local v
  v="$("$1" --version 2>/dev/null)" || return 1
  [[ "$v" == Chromium* || "$v" == Google\ Chrome* ]]
}

for c in "${CHROMIUM_BIN:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$c" ] && [ -x "$c" ] && works "$c"; then
    echo "$c"
    exit 0
  fi
done

fail() {
  cat >&2 <<MSG
$name: $1
  The console's browser test needs Chromium. Install it as root:
    apt-get update && apt-get install -y --no-install-recommends chromium
  or point CHROMIUM_BIN at a Chromium or Chrome binary.
MSG
  exit 1
}

command -v apt-get >/dev/null || fail "no apt-get on this machine"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null && sudo -n true 2>/dev/null || fail "not root, and no password-less sudo"
  sudo=(sudo -n)
fi
echo "$name: installing Debian's chromium (apt-get update, then about 100 MB of packages)" >&2
start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >&2 || fail "apt-get update failed"
"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium >&2 || fail "apt-get install chromium failed"
works /usr/bin/chromium || fail "/usr/bin/chromium does not run after the install"
echo "$name: $(/usr/bin/chromium --version) installed in $((SECONDS - start)) s" >&2
echo /usr/bin/chromium
