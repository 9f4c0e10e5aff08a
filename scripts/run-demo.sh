#!/usr/bin/env bash
# Starts the local demo on loopback: graymesh (GRAYMESH_DEMO_CONFIG, default
# examples/demo.yaml), Envoy (envoy/bootstrap.yaml, all config over ADS) and
# demo-service (shop) in a stable and a gray version. graymesh is restarted
# when it dies; Envoy keeps serving meanwhile. Ctrl-C stops everything.
#
# The config is copied to the work folder (default .tools/shop/, one per
# clone; GRAYMESH_DEMO_DIR overrides it) and graymesh watches the copy: edit
# that. A file the config names by a relative path is looked up next to the
# copy. The config must use the addresses below. Their ports can be moved,
# each with GRAYMESH_DEMO_<NAME>_PORT or all with GRAYMESH_DEMO_PORT_OFFSET:
# the copy is rewritten to match. The demo refuses to start while another
# process listens on one of its ports.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
name=run-demo
demo=shop
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

port listener LISTENER 10000
port admin ADMIN 18080
port extproc EXTPROC 18081
port xds XDS 18000
port stable STABLE 9101
port gray GRAY 9102
port envoy_admin ENVOY_ADMIN 9901
src="${GRAYMESH_DEMO_CONFIG:-examples/demo.yaml}"
check_ports
copy_config "$src"
render_ports "$work/config.yaml"
echo "$name: work folder $work (logs, config.yaml, state)"

"$bindir/demo-service" --listen "127.0.0.1:$stable" --env stable --version v1 >"$work/shop-stable.log" 2>&1 &
started shop-stable
shop_stable=$!
# GRAYMESH_DEMO_GRAY_FLAGS (make run GRAY_FLAGS=...) spoils gray on purpose,
# e.g. "--error-rate 0.1" or "--add-latency 50ms", for the analysis to catch.
# shellcheck disable=SC2086
"$bindir/demo-service" --listen "127.0.0.1:$gray" --env gray --version v2 ${GRAYMESH_DEMO_GRAY_FLAGS:-} >"$work/shop-gray.log" 2>&1 &
started shop-gray
shop_gray=$!
: >"$work/graymesh.log"
supervise graymesh "$work/graymesh.log" "$bindir/graymesh" serve --config "$work/config.yaml" \
  --state-dir "$work/state" --drain-timeout 2s --log-format text
wait_ready graymesh "$work/graymesh.pid" "$admin" "http://127.0.0.1:$admin/readyz"
sed -e "s/port_value: 9901/port_value: $envoy_admin/" -e "s/port_value: 18000/port_value: $xds/" \
  envoy/bootstrap.yaml >"$work/envoy.yaml"
"$envoy" -c "$work/envoy.yaml" --disable-hot-restart -l warn >"$work/envoy.log" 2>&1 &
started envoy
envoy_pid=$!
wait_ready shop-stable "$shop_stable" "$stable" "http://127.0.0.1:$stable/healthz"
wait_ready shop-gray "$shop_gray" "$gray" "http://127.0.0.1:$gray/healthz"
# Envoy is ready once its admin says so (listeners from xDS warmed) and it
# holds the listener's port. No request through the listener: it would be
# a decision, a trace and a sample of the analysis of its own.
wait_ready envoy "$envoy_pid" "$envoy_admin" "http://127.0.0.1:$envoy_admin/ready"
wait_ready "envoy listener (from xDS)" "$envoy_pid" "$listener"

cat <<MSG

graymesh demo is up:
  Envoy listener   http://127.0.0.1:$listener   (every route from graymesh over ADS)
  graymesh admin   http://127.0.0.1:$admin/status  /metrics
  console          http://127.0.0.1:$admin/ui/   (log in with the token in $work/state/console-token)
  Envoy admin      http://127.0.0.1:$envoy_admin
  config           $work/config.yaml   (a copy of $src; edit it, graymesh picks it up within a second)
  logs             $work/

$(token_hint "$src" "http://127.0.0.1:$listener/" docs/tour.md)

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
