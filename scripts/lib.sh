# Shared by the demo scripts: the work folder, process bookkeeping,
# supervision and readiness polling. Callers set $root, $name and $demo
# (shop or mesh) before sourcing, and run under `set -euo pipefail`.

# The work folder holds the logs, the copy of the config graymesh watches,
# graymesh's state and the rendered Envoy bootstraps. One per clone, so two
# checkouts never share logs or state.
work="${GRAYMESH_DEMO_DIR:-${GRAYMESH_DEMO_LOGS:-$root/.tools/$demo}}"
bindir="${GRAYMESH_BIN_DIR:-$root/bin}"
envoy="${ENVOY_BIN:-$root/.tools/bin/envoy}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"

# copy_config SRC: graymesh watches $work/config.yaml, a fresh copy of SRC
# for each run, so editing it (as README.md's operating section does) never
# touches a tracked file. The state directory starts empty with it: the
# copy and the state in force always agree at start.
copy_config() {
  [ -f "$1" ] || { echo "$name: no config file $1" >&2; exit 1; }
  cp "$1" "$work/config.yaml"
  rm -rf "$work/state"
}

pids=()
names=()
started() { pids+=("$!"); names+=("$1"); }
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # url what
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$name: $2 did not come up; see $work" >&2
  exit 1
}

# supervise WHAT LOG CMD...: runs CMD in the background and starts it again
# whenever it dies with a non-zero status (a crash, kill -9), with a line on
# stderr, until the demo stops. Its pid is in $work/WHAT.pid. A clean exit
# (status 0: SIGTERM or SIGINT) ends the supervisor; so do 5 failures in a
# row within 5 s of their start.
supervise() {
  local what=$1 log=$2
  shift 2
  (
    child=
    trap '[ -z "$child" ] || kill "$child" 2>/dev/null; wait; exit 0' TERM
    quick=0
    while :; do
      begun=$SECONDS
      "$@" >>"$log" 2>&1 &
      child=$!
      echo "$child" >"$work/$what.pid"
      if wait "$child"; then rc=0; else rc=$?; fi
      if [ "$rc" -eq 0 ]; then
        echo "$name: $what (pid $child) exited cleanly" >&2
        exit 0
      fi
      why="exit status $rc"
      [ "$rc" -gt 128 ] && why="killed by signal $((rc - 128))"
      if [ $((SECONDS - begun)) -lt 5 ]; then quick=$((quick + 1)); else quick=0; fi
      if [ "$quick" -ge 5 ]; then
        echo "$name: $what failed $quick times in a row; giving up (see $log)" >&2
        exit 1
      fi
      echo "$name: $what (pid $child) died ($why); restarting it — Envoy keeps serving meanwhile (stable, ext_proc fails open)" >&2
      sleep 0.5 # back-off between restarts
    done
  ) &
  started "$what"
}
