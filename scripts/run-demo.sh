#!/usr/bin/env bash
# Starts the local demo on loopback: graymesh (examples/demo.yaml), Envoy
# (envoy/bootstrap.yaml, all config over ADS) and demo-service (shop) in a stable
# and a gray version. Ctrl-C stops everything.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
logs="${GRAYMESH_DEMO_LOGS:-${TMPDIR:-/tmp}/graymesh-demo}"
mkdir -p "$logs"
name=run-demo
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

bin/demo-service --listen 127.0.0.1:9101 --env stable --version v1 >"$logs/shop-stable.log" 2>&1 & pids+=($!)
bin/demo-service --listen 127.0.0.1:9102 --env gray --version v2 >"$logs/shop-gray.log" 2>&1 & pids+=($!)
bin/graymesh serve --config examples/demo.yaml --log-format text >"$logs/graymesh.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:18080/readyz graymesh
.tools/bin/envoy -c envoy/bootstrap.yaml --disable-hot-restart -l warn >"$logs/envoy.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:9101/healthz shop-stable
wait_for http://127.0.0.1:9102/healthz shop-gray
wait_for http://127.0.0.1:10000/ "envoy listener (from xDS)"

cat <<MSG

graymesh demo is up (logs in $logs):
  Envoy listener   http://127.0.0.1:10000   (every route from graymesh over ADS)
  graymesh admin   http://127.0.0.1:18080/status  /metrics
  Envoy admin      http://127.0.0.1:9901

Try, in another terminal (README.md has the whole tour):
  TOKEN=\$(bin/graymesh token --config examples/demo.yaml --subject alice)
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:10000/

Ctrl-C stops the demo.
MSG
wait -n "${pids[@]}"
echo "run-demo: a process exited; see $logs" >&2
