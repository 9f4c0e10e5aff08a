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
# for each run, so editing it (as docs/operating.md does) never
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

# Ports. port VAR NAME DEFAULT sets $VAR to GRAYMESH_DEMO_<NAME>_PORT, or
# to DEFAULT moved by GRAYMESH_DEMO_PORT_OFFSET (0 unless set), and notes
# it for check_ports and render_ports. Every port of a demo goes through it.
port_names=()
port_defaults=()
port_values=()
port() {
  local var="GRAYMESH_DEMO_$2_PORT"
  local value="${!var:-$(($3 + ${GRAYMESH_DEMO_PORT_OFFSET:-0}))}"
  printf -v "$1" '%s' "$value"
  port_names+=("$2")
  port_defaults+=("$3")
  port_values+=("$value")
}

# listening PORT prints the inode of every socket listening on PORT on
# this host (IPv4 and IPv6, any address): with SO_REUSEPORT (Envoy's
# default for its listeners) two processes can listen on the same port at
# once, and the kernel shares the connections between them.
listening() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# check_ports refuses to start when another process (another demo, or a
# leftover of one) listens on one of the demo's ports: its answers would
# pass for ours.
check_ports() {
  [ -r /proc/net/tcp ] || { echo "$name: cannot see which ports are taken (no /proc/net/tcp: Linux only)" >&2; exit 1; }
  local i taken=()
  for i in "${!port_names[@]}"; do
    [ -z "$(listening "${port_values[$i]}")" ] || taken+=("${port_values[$i]} (${port_names[$i]})")
  done
  [ "${#taken[@]}" -eq 0 ] && return 0
  echo "$name: another process listens on ports ${taken[*]}: another demo, or a leftover of one?" >&2
  echo "$name: move a port with GRAYMESH_DEMO_<NAME>_PORT=N, or every port with GRAYMESH_DEMO_PORT_OFFSET=N" >&2
  exit 1
}

# render_ports FILE rewrites in FILE, in place, every default port that
# was moved, as 127.0.0.1:PORT and as "_port: PORT" (one pass, so a port
# moved onto another's default is not moved twice).
render_ports() {
  local i args=() back=()
  for i in "${!port_names[@]}"; do
    [ "${port_defaults[$i]}" = "${port_values[$i]}" ] && continue
    args+=(-e "s/(127\.0\.0\.1:|_port: )${port_defaults[$i]}\b/\1@@${port_names[$i]}@@/g")
    back+=(-e "s/@@${port_names[$i]}@@/${port_values[$i]}/g")
  done
  [ "${#args[@]}" -eq 0 ] || sed -i -E "${args[@]}" "$1"
  [ "${#back[@]}" -eq 0 ] || sed -i -E "${back[@]}" "$1"
}

# holds PID PORT: process PID holds every socket listening on PORT, and
# there is one.
holds() {
  local inodes fds i
  inodes=$(listening "$2")
  [ -n "$inodes" ] || return 1
  fds=$(ls -l "/proc/$1/fd" 2>/dev/null) || return 1
  for i in $inodes; do
    grep -qF "socket:[$i]" <<<"$fds" || return 1
  done
}

# wait_ready WHAT PID PORT [URL]: waits until process PID holds PORT and
# URL answers, so a reply from any other process on the port never
# counts. PID exiting fails at once. PID may instead be the pid file of a
# supervised process (restarted when it dies: no failing at once then).
# It polls every 0.1 s, GRAYMESH_DEMO_READY_TRIES times (300: 30 s).
wait_ready() {
  local what=$1 pid=$2 port=$3 url=${4:-}
  wait_until "$what" "$pid" answers "$pid" "$port" "$url" && return 0
  echo "$name: $what did not come up on port $port; see $work" >&2
  exit 1
}

# answers PID PORT URL: process PID (or the one in pid file PID) holds
# PORT, and URL, unless empty, answers with a success.
answers() {
  local p=$1
  [[ "$p" =~ ^[0-9]+$ ]] || p=$(cat "$p" 2>/dev/null) || return 1
  [ -n "$p" ] && holds "$p" "$2" && { [ -z "$3" ] || curl -fsS -o /dev/null "$3" 2>/dev/null; }
}

# wait_until WHAT PID CHECK...: polls the command CHECK as wait_ready
# polls (every 0.1 s, GRAYMESH_DEMO_READY_TRIES times) until it succeeds;
# it returns 1 when the tries run out. PID (a pid, or a pid file: see
# wait_ready) exiting fails at once.
wait_until() {
  local what=$1 pid=$2
  shift 2
  for _ in $(seq 1 "${GRAYMESH_DEMO_READY_TRIES:-300}"); do
    if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
      echo "$name: $what (pid $pid) exited before it was ready; see $work" >&2
      exit 1
    fi
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# token_hint SRC URL DOC is a banner's suggestion for trying the demo at
# URL: a demo token where SRC has an HMAC key to mint one (graymesh
# token), else a plain request and why there is no token line. DOC is the
# guide to read next.
token_hint() {
  if "$bindir/graymesh" token --config "$1" --subject alice >/dev/null 2>&1; then
    cat <<TRY
Try, in another terminal ($3 has the whole tour):
  TOKEN=\$(bin/graymesh token --config $1 --subject alice)
  curl -s -H "Authorization: Bearer \$TOKEN" $2
TRY
  else
    cat <<TRY
Try, in another terminal ($3 has the whole tour; $1 has no HMAC key
for graymesh token to mint a demo token with: send a token from your issuer):
  curl -s $2
TRY
  fi
}

# supervise WHAT LOG CMD...: runs CMD in the background and starts it again
# whenever it dies with a non-zero status (a crash, kill -9), with a line on
# stderr, until the demo stops. Its pid is in $work/WHAT.pid. A clean exit
# (status 0: SIGTERM or SIGINT) ends the supervisor; so do 5 failures in a
# row within 5 s of their start.
supervise() {
  local what=$1 log=$2
  shift 2
  rm -f "$work/$what.pid"
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

# keep_up WHAT DELAY LOG CMD...: runs CMD in the background and, whenever
# it ends (stopped by hand to watch the fallback, or crashed), starts it
# again DELAY seconds later, until the demo stops. Its pid is in
# $work/WHAT.pid, so `kill $(cat $work/WHAT.pid)` stops this demo's
# process and no other.
keep_up() {
  local what=$1 delay=$2 log=$3
  shift 3
  rm -f "$work/$what.pid"
  (
    child=
    pause=
    trap '[ -z "$child" ] || kill "$child" 2>/dev/null; [ -z "$pause" ] || kill "$pause" 2>/dev/null; wait; exit 0' TERM
    while :; do
      "$@" >>"$log" 2>&1 &
      child=$!
      echo "$child" >"$work/$what.pid"
      wait "$child" || true
      child=
      # In the background, so a TERM meanwhile (the demo stopping: Ctrl-C
      # ends the child first) is handled at once, and silently.
      sleep "$delay" &
      pause=$!
      wait "$pause" || true
      pause=
      echo "$name: $what had stopped; started it again" >&2
    done
  ) &
  started "$what"
}
