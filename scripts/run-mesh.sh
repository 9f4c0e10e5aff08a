#!/usr/bin/env bash
# Starts the four-hop mesh demo on loopback (GRAYMESH_DEMO_CONFIG, default
# examples/mesh.yaml): graymesh, Jaeger (when built; see
# scripts/install-jaeger.sh), one sidecar Envoy per service and the demo
# services frontend → orders → inventory → pricing. graymesh is restarted
# when it dies; the sidecars keep serving meanwhile. Ctrl-C stops everything.
#
# The config is copied to the work folder (default .tools/mesh/, one per
# clone; GRAYMESH_DEMO_DIR overrides it) and graymesh watches the copy. The
# config must keep the addresses of examples/mesh.yaml.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
jaeger="$cache/jaeger-v1.76.0/jaeger"
name=run-mesh
demo=mesh
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
src="${GRAYMESH_DEMO_CONFIG:-examples/mesh.yaml}"
copy_config "$src"
echo "$name: work folder $work (logs, config.yaml, state)"

if [ -x "$jaeger" ]; then
  "$jaeger" --config examples/jaeger.yaml >"$work/jaeger.log" 2>&1 &
  started jaeger
  wait_for http://127.0.0.1:16686/ jaeger
else
  echo "run-mesh: no Jaeger at $jaeger (make jaeger builds it); running without trace storage" >&2
fi

otlp=127.0.0.1:4317
svc() { # name env version port calls outbound [extra...]
  local name=$1 env=$2 version=$3 port=$4 calls=$5 outbound=$6; shift 6
  "$bindir/demo-service" --service "$name" --env "$env" --version "$version" --listen "127.0.0.1:$port" \
    ${calls:+--calls "$calls" --outbound "$outbound"} --otlp "$otlp" "$@" >"$work/$name-$env.log" 2>&1 &
  started "$name-$env"
}
svc frontend  stable v1 9201 orders    127.0.0.1:15001
svc frontend  gray   v2 9207 orders    127.0.0.1:15001
svc orders    stable v1 9202 inventory 127.0.0.1:15002
svc orders    gray   v2 9203 inventory 127.0.0.1:15002
svc inventory stable v1 9204 pricing   127.0.0.1:15003 ${GRAYMESH_DROP_LANE:+--drop-lane}
svc pricing   stable v1 9205 "" ""
svc pricing   gray   v2 9206 "" ""

: >"$work/graymesh.log"
supervise graymesh "$work/graymesh.log" "$bindir/graymesh" serve --config "$work/config.yaml" \
  --state-dir "$work/state" --drain-timeout 2s --log-format text \
  --console-jaeger http://127.0.0.1:16686 --console-trace-service frontend
wait_for http://127.0.0.1:18180/readyz graymesh

admin=9911
for s in frontend orders inventory pricing; do
  boot="$work/envoy-$s.yaml"
  sed -e "s/id: sidecar-frontend/id: sidecar-$s/" -e "s/cluster: frontend/cluster: $s/" \
      -e "s/port_value: 9902/port_value: $admin/" -e "s/port_value: 18000/port_value: 18100/" envoy/sidecar.yaml >"$boot"
  "$envoy" -c "$boot" --disable-hot-restart --concurrency 1 -l warn >"$work/envoy-$s.log" 2>&1 &
  started "envoy-$s"
  admin=$((admin + 1))
done
for p in 10001 10002 10003 10004; do wait_for "http://127.0.0.1:$p/" "sidecar inbound :$p"; done

cat <<MSG

graymesh mesh demo is up (logs in $work/):
  edge (frontend's sidecar)  http://127.0.0.1:10001
  graymesh admin             http://127.0.0.1:18180/status
  console                    http://127.0.0.1:18180/ui/   (log in with the token in $work/state/console-token; Chains reads Jaeger)
  Jaeger UI                  http://127.0.0.1:16686   (service "frontend")
  config                     $work/config.yaml   (a copy of $src; edit it, graymesh picks it up within a second)

Try (README.md has the whole tour):
  TOKEN=\$(bin/graymesh token --config $src --subject alice)
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:10001/
  bin/graymesh verify-traces --jaeger http://127.0.0.1:16686 --service frontend --since 5m

If graymesh dies it is restarted; the sidecars keep serving meanwhile.
Ctrl-C stops the demo.
MSG
# Wait for Ctrl-C. A service version stopped by hand (to watch the fallback)
# does not end the demo, nor does graymesh dying (it is restarted).
wait || true
