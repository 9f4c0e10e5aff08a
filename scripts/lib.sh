# Shared by the demo scripts: process bookkeeping and readiness polling.
# Callers set $logs and $name before sourcing.
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() { # url what
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$name: $2 did not come up; see $logs" >&2
  exit 1
}
