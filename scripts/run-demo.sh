#!/usr/bin/env bash
# Starts the local demo on loopback: graymesh (GRAYMESH_DEMO_CONFIG, default
# examples/demo.yaml), Envoy (envoy/bootstrap.yaml, all config over ADS) and
# demo-service (shop) in a stable and a gray version. graymesh is restarted
# when it dies; Envoy keeps serving meanwhile. Ctrl-C stops everything.
#
# The config is copied to the work folder (default .tools/shop/, one per
# clone; GRAYMESH_DEMO_DIR overrides it) and graymesh watches the copy: edit
# that. A file the config names by a relative path is looked up next to the
# copy. The config must use the addresses below; their ports can be moved
# with GRAYMESH_DEMO_<NAME>_PORT (the e2e tests run the demo on free ports).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
name=run-demo
demo=shop
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

listener=${GRAYMESH_DEMO_LISTENER_PORT:-10000}
admin=${GRAYMESH_DEMO_ADMIN_PORT:-18080}
xds=${GRAYMESH_DEMO_XDS_PORT:-18000}
stable=${GRAYMESH_DEMO_STABLE_PORT:-9101}
gray=${GRAYMESH_DEMO_GRAY_PORT:-9102}
envoy_admin=${GRAYMESH_DEMO_ENVOY_ADMIN_PORT:-9901}
src="${GRAYMESH_DEMO_CONFIG:-examples/demo.yaml}"
copy_config "$src"
echo "$name: work folder $work (logs, config.yaml, state)"

"$bindir/demo-service" --listen "127.0.0.1:$stable" --env stable --version v1 >"$work/shop-stable.log" 2>&1 &
started shop-stable
# GRAYMESH_DEMO_GRAY_FLAGS (make run GRAY_FLAGS=...) spoils gray on purpose,
# e.g. "--error-rate 0.1" or "--add-latency 50ms", for the analysis to catch.
# shellcheck disable=SC2086
"$bindir/demo-service" --listen "127.0.0.1:$gray" --env gray --version v2 ${GRAYMESH_DEMO_GRAY_FLAGS:-} >"$work/shop-gray.log" 2>&1 &
started shop-gray
: >"$work/graymesh.log"
supervise graymesh "$work/graymesh.log" "$bindir/graymesh" serve --config "$work/config.yaml" \
  --state-dir "$work/state" --drain-timeout 2s --log-format text
wait_for "http://127.0.0.1:$admin/readyz" graymesh
sed -e "s/port_value: 9901/port_value: $envoy_admin/" -e "s/port_value: 18000/port_value: $xds/" \
  envoy/bootstrap.yaml >"$work/envoy.yaml"
"$envoy" -c "$work/envoy.yaml" --disable-hot-restart -l warn >"$work/envoy.log" 2>&1 &
started envoy
wait_for "http://127.0.0.1:$stable/healthz" shop-stable
wait_for "http://127.0.0.1:$gray/healthz" shop-gray
wait_for "http://127.0.0.1:$listener/" "envoy listener (from xDS)"

cat <<MSG

graymesh demo is up:
  Envoy listener   http://127.0.0.1:$listener   (every route from graymesh over ADS)
  graymesh admin   http://127.0.0.1:$admin/status  /metrics
  console          http://127.0.0.1:$admin/ui/   (log in with the token in $work/state/console-token)
  Envoy admin      http://127.0.0.1:$envoy_admin
  config           $work/config.yaml   (a copy of $src; edit it, graymesh picks it up within a second)
  logs             $work/

Try, in another terminal (README.md has the whole tour):
  TOKEN=\$(bin/graymesh token --config $src --subject alice)
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$listener/

If graymesh dies it is restarted; Envoy serves stable meanwhile.
Ctrl-C stops the demo.
MSG
# Any process ending (graymesh's supervisor only when it gives up) ends
# the demo.
if wait -n "${pids[@]}"; then rc=0; else rc=$?; fi
for i in "${!pids[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || echo "$name: ${names[$i]} exited (status $rc); stopping the demo; see $work" >&2
done
exit 1
