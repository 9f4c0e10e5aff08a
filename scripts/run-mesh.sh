#!/usr/bin/env bash
# Starts the four-hop mesh demo on loopback (GRAYMESH_DEMO_CONFIG, default
# examples/mesh.yaml): graymesh, Jaeger (when built; see
# scripts/install-jaeger.sh), one sidecar Envoy per service and the demo
# services frontend → orders → inventory → pricing. graymesh is restarted
# when it dies, and a service version stopped by hand is started again
# GRAYMESH_DEMO_RESTART_AFTER seconds later (default 20); the sidecars keep
# serving meanwhile. Ctrl-C stops everything.
#
# The config is copied to the work folder (default .tools/mesh/, one per
# clone; GRAYMESH_DEMO_DIR overrides it) and graymesh watches the copy. The
# config must keep the addresses of examples/mesh.yaml. Every port can be
# moved, each with GRAYMESH_DEMO_<NAME>_PORT (the names below) or all with
# GRAYMESH_DEMO_PORT_OFFSET: the copy, the sidecars' bootstraps and
# Jaeger's config follow. The demo refuses to start while another process
# listens on one of its ports.
#
# JAEGER_UI_ASSETS (a built Jaeger UI, see examples/jaeger.yaml) makes
# Jaeger serve its UI, and the console link each chain to it.
#
# GRAYMESH_DEMO_KAFKA=1 (make run DEMO=mesh KAFKA=1) adds the lanes
# through Kafka (docs/queues.md): a one-node KRaft Kafka 4.4 (make kafka
# installs it; KAFKA_HOME overrides where; java on PATH runs it) with its
# data in the work folder, the topic order-events, orders publishing an
# event per request to it, and a stable and a gray notifier consuming it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cache="${GRAYMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/graymesh}"
jaeger="${JAEGER_BIN:-$cache/jaeger-v1.76.0/jaeger}"
kafka_version=4.4.0 # the release scripts/install-kafka.sh installs
kafka_home="${KAFKA_HOME:-$cache/kafka-$kafka_version}"
kafka=
[ "${GRAYMESH_DEMO_KAFKA:-}" != 1 ] || kafka=1
topic=order-events
name=run-mesh
demo=mesh
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
src="${GRAYMESH_DEMO_CONFIG:-examples/mesh.yaml}"
restart_after="${GRAYMESH_DEMO_RESTART_AFTER:-20}"

port admin ADMIN 18180
port extproc EXTPROC 18181
port xds XDS 18100
port jaeger_ui JAEGER_UI 16686
port jaeger_grpc JAEGER_GRPC 16685
port otlp OTLP 4317
services=(frontend orders inventory pricing)
# Per service: its sidecar's inbound, outbound, fallback and admin ports,
# and its versions' ports (inventory has no gray version, nor a fallback).
declare -A inbound outbound fallback envoy_admin version_port
i=1
for s in "${services[@]}"; do
  up=${s^^}
  port "inbound[$s]" "${up}_INBOUND" $((10000 + i))
  port "outbound[$s]" "${up}_OUTBOUND" $((15000 + i))
  [ "$s" = inventory ] || port "fallback[$s]" "${up}_FALLBACK" $((16000 + i))
  port "envoy_admin[$s]" "${up}_ENVOY_ADMIN" $((9910 + i))
  i=$((i + 1))
done
port "version_port[frontend-stable]" FRONTEND_STABLE 9201
port "version_port[frontend-gray]" FRONTEND_GRAY 9207
port "version_port[orders-stable]" ORDERS_STABLE 9202
port "version_port[orders-gray]" ORDERS_GRAY 9203
port "version_port[inventory-stable]" INVENTORY_STABLE 9204
port "version_port[pricing-stable]" PRICING_STABLE 9205
port "version_port[pricing-gray]" PRICING_GRAY 9206
if [ -n "$kafka" ]; then
  port kafka_port KAFKA 9092
  port kafka_controller KAFKA_CONTROLLER 9093
  port "version_port[notifier-stable]" NOTIFIER_STABLE 9208
  port "version_port[notifier-gray]" NOTIFIER_GRAY 9209
  [ -f "$kafka_home/libs/kafka_2.13-$kafka_version.jar" ] || {
    echo "$name: no Kafka $kafka_version at $kafka_home: make kafka installs it (or set KAFKA_HOME)" >&2
    exit 1
  }
  command -v java >/dev/null || { echo "$name: no java on PATH (Kafka $kafka_version needs Java 17 or later)" >&2; exit 1; }
fi

check_ports
copy_config "$src"
render_ports "$work/config.yaml"
echo "$name: work folder $work (logs, config.yaml, state)"

jaeger_query=
jaeger_ui_flags=()
if [ -x "$jaeger" ]; then
  # examples/jaeger.yaml reads its addresses from these.
  GRAYMESH_JAEGER_UI_PORT=$jaeger_ui GRAYMESH_JAEGER_GRPC_PORT=$jaeger_grpc GRAYMESH_JAEGER_OTLP_PORT=$otlp \
    "$jaeger" --config examples/jaeger.yaml >"$work/jaeger.log" 2>&1 &
  started jaeger
  jaeger_pid=$!
  wait_ready jaeger "$jaeger_pid" "$otlp"
  wait_ready jaeger "$jaeger_pid" "$jaeger_ui" "http://127.0.0.1:$jaeger_ui/"
  jaeger_query="http://127.0.0.1:$jaeger_ui"
  # Only a Jaeger given a built UI has one to link to: ours serves a
  # placeholder page at / otherwise.
  [ -z "${JAEGER_UI_ASSETS:-}" ] || jaeger_ui_flags=(--console-jaeger-ui "$jaeger_query")
else
  echo "run-mesh: no Jaeger at $jaeger (make jaeger builds it); running without trace storage" >&2
fi

# Kafka: one process that is broker and the single KRaft controller,
# everything on loopback, its config and data in the work folder (fresh
# each run, as graymesh's state). "${kafka_java[@]}" CLASS ARGS... runs a
# class of the install with a small JVM: a bounded heap, the serial
# collector and the C1 compiler only (as e2e/kafka_harness_test.go does,
# on 2 shared cores). An array, not a function: started in the
# background, java itself is then $!, the process that holds the port.
kafka_java=(java -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.io.tmpdir="$work/kafka-tmp" -cp "$kafka_home/libs/*")
# kafka_started: the broker holds its port and says it has started (it
# logs that once it is registered with the controller and unfenced).
kafka_started() {
  holds "$kafka_pid" "$kafka_port" && grep -q 'Kafka Server started' "$work/kafka.log"
}
if [ -n "$kafka" ]; then
  rm -rf "$work/kafka-data" "$work/kafka-tmp"
  mkdir -p "$work/kafka-tmp"
  cat >"$work/kafka.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$kafka_controller
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_controller
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$work/kafka-data
# One broker: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
offsets.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
# The install has no topic tool (kafka-topics): orders creates its topic
# at start, with this many partitions.
num.partitions=2
PROPS
  # KRaft formats the data directory before the first start; a cluster
  # id is 16 random bytes in URL-safe base64 without padding.
  # An id starting with '-' reads as an option to the storage tool.
  cluster_id=-
  while [[ "$cluster_id" == [-_]* ]]; do
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  "${kafka_java[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$work/kafka.properties" >"$work/kafka.log" 2>&1 || {
    echo "$name: formatting Kafka's storage failed; see $work/kafka.log" >&2
    exit 1
  }
  "${kafka_java[@]}" kafka.Kafka "$work/kafka.properties" >>"$work/kafka.log" 2>&1 &
  started kafka
  kafka_pid=$!
fi
# With Kafka, orders publishes an event per request served.
orders_kafka=()
[ -z "$kafka" ] || orders_kafka=(--kafka "127.0.0.1:$kafka_port" --publish "$topic")

# version NAME ENV VERSION [CALLS [extra...]]: one version of a service,
# kept up; CALLS is the next service, reached through this service's
# sidecar's outbound listener.
version() {
  local svc=$1 env=$2 ver=$3 calls=${4:-}
  shift 3
  [ $# -eq 0 ] || shift
  : >"$work/$svc-$env.log"
  keep_up "$svc-$env" "$restart_after" "$work/$svc-$env.log" "$bindir/demo-service" --service "$svc" --env "$env" --version "$ver" \
    --listen "127.0.0.1:${version_port[$svc-$env]}" ${calls:+--calls "$calls" --outbound "127.0.0.1:${outbound[$svc]}"} \
    --otlp "127.0.0.1:$otlp" "$@"
}
version frontend stable v1 orders
version frontend gray v2 orders
version orders stable v1 inventory "${orders_kafka[@]}"
version orders gray v2 inventory "${orders_kafka[@]}"
# shellcheck disable=SC2046
version inventory stable v1 pricing $([ -z "${GRAYMESH_DROP_LANE:-}" ] || echo --drop-lane)
version pricing stable v1
version pricing gray v2

: >"$work/graymesh.log"
supervise graymesh "$work/graymesh.log" "$bindir/graymesh" serve --config "$work/config.yaml" \
  --state-dir "$work/state" --drain-timeout 2s --log-format text \
  ${jaeger_query:+--console-jaeger "$jaeger_query"} "${jaeger_ui_flags[@]}" --console-trace-service frontend
wait_ready graymesh "$work/graymesh.pid" "$admin" "http://127.0.0.1:$admin/readyz"

declare -A envoy_pid
for s in "${services[@]}"; do
  boot="$work/envoy-$s.yaml"
  sed -e "s/id: sidecar-frontend/id: sidecar-$s/" -e "s/cluster: frontend/cluster: $s/" \
      -e "s/port_value: 9902/port_value: ${envoy_admin[$s]}/" -e "s/port_value: 18000/port_value: $xds/" envoy/sidecar.yaml >"$boot"
  "$envoy" -c "$boot" --disable-hot-restart --concurrency 1 -l warn >"$work/envoy-$s.log" 2>&1 &
  started "envoy-$s"
  envoy_pid[$s]=$!
done
if [ -n "$kafka" ]; then
  # A JVM starting on a busy machine takes a while: up to 90 s.
  GRAYMESH_DEMO_READY_TRIES=${GRAYMESH_DEMO_READY_TRIES:-900} wait_until kafka "$kafka_pid" kafka_started || {
    echo "$name: Kafka did not start on port $kafka_port; see $work/kafka.log" >&2
    exit 1
  }
  # The notifiers read the lane state from graymesh's admin API: they
  # start once graymesh answers.
  for notifier_env in stable gray; do
    version notifier "$notifier_env" "$notifier_env" "" --kafka "127.0.0.1:$kafka_port" --consume "$topic" --lanes "http://127.0.0.1:$admin/v1/lanes"
  done
fi
for v in "${!version_port[@]}"; do
  wait_ready "$v" "$work/$v.pid" "${version_port[$v]}" "http://127.0.0.1:${version_port[$v]}/healthz"
done
# A sidecar is ready once its admin says so (listeners from xDS warmed)
# and it holds its inbound port. No request through the chain: it would
# leave a trace of its own in Jaeger (a 502 while the chain starts).
for s in "${services[@]}"; do
  wait_ready "envoy-$s" "${envoy_pid[$s]}" "${envoy_admin[$s]}" "http://127.0.0.1:${envoy_admin[$s]}/ready"
  wait_ready "envoy-$s inbound" "${envoy_pid[$s]}" "${inbound[$s]}"
done
# Until the stable notifier has seen a member in gray's group, it takes
# gray's events too (docs/queues.md): the demo is up once it has.
gray_live() {
  [[ "$(curl -fsS "http://127.0.0.1:${version_port[notifier-stable]}/consumed" 2>/dev/null)" == *'"gray_live":true'* ]]
}
if [ -n "$kafka" ]; then
  wait_until "the stable notifier seeing the gray one" "$work/notifier-stable.pid" gray_live || {
    echo "$name: the stable notifier never saw the gray one; see $work/notifier-*.log" >&2
    exit 1
  }
fi

traces="  Jaeger             none (make jaeger builds it)"
if [ -n "$jaeger_query" ] && [ -n "${JAEGER_UI_ASSETS:-}" ]; then
  traces="  Jaeger UI          $jaeger_query   (service \"frontend\"; the console's Chains link to it)"
elif [ -n "$jaeger_query" ]; then
  traces="  Jaeger query API   $jaeger_query/api/traces?service=frontend   (no UI: JAEGER_UI_ASSETS serves one, docs/mesh.md)"
fi
kafka_try=
[ -z "$kafka" ] || kafka_try="

Kafka $kafka_version on 127.0.0.1:$kafka_port: orders publishes an event per request to $topic, carrying
its lane (docs/queues.md). After alice's request above (gray) and an anonymous one (stable):
  curl -s http://127.0.0.1:${version_port[notifier-gray]}/consumed     # the gray notifier: alice's events
  curl -s http://127.0.0.1:${version_port[notifier-stable]}/consumed     # the stable notifier: the others"
cat <<MSG

graymesh mesh demo is up (logs in $work/):
  edge (frontend's sidecar)  http://127.0.0.1:${inbound[frontend]}
  graymesh admin             http://127.0.0.1:$admin/status
  console                    http://127.0.0.1:$admin/ui/   (log in with the token in $work/state/console-token; Chains reads Jaeger)
$traces
  config                     $work/config.yaml   (a copy of $src; edit it, graymesh picks it up within a second)
  a service's pid            $work/SERVICE-ENV.pid   (kill it to watch the fallback; it is started again ${restart_after}s later)

$(token_hint "$src" "http://127.0.0.1:${inbound[frontend]}/" docs/mesh.md)
  bin/graymesh verify-traces --jaeger http://127.0.0.1:$jaeger_ui --service frontend --since 5m$kafka_try

If graymesh dies it is restarted; the sidecars keep serving meanwhile.
Ctrl-C stops the demo.
MSG
# Wait for Ctrl-C. A service version stopped by hand (to watch the
# fallback) is started again, and graymesh dying is restarted: neither
# ends the demo.
wait || true
