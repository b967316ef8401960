#!/usr/bin/env bash
# Issue 12's drill: untxt spread over several hosts, proven on this machine with network
# namespaces. A "stores" host (PostgreSQL, Redis, SeaweedFS as S3 with SSE-KMS, the key
# service), two API hosts, two worker hosts and a client host, each a namespace on one bridge
# (10.77.0.0/24, in a namespace of its own: the drill adds no address to this machine's own
# network). Then: jobs uploaded through both API hosts, one worker host's link cut and restored,
# Redis restarted, a WebSocket client on each API host, and the figures
# submitted / completed / failed / lost / duplicated, and the orphan results. Exits non-zero on
# any loss, duplicate or orphan (or a WebSocket that missed the other host's events); everything
# it made is removed on exit.
#
#   scripts/drills/multihost.sh [--jobs N] [--keep-logs DIR]   as root, from the project root
#   scripts/drills/multihost.sh --cleanup                      remove what a killed run left
#
# The stack's own parts run as in start_services.sh: each as its own system user, with the
# project's code (scripts/lib/stack.sh, devstack/, database/migrate.py, backend.users).
set -euo pipefail

# A clean environment: a DATABASE_URL or REDIS_URL exported in the caller's shell would win over
# the drill hosts' env files and point them elsewhere.
if [[ -z "${UNTXT_DRILL_CLEAN:-}" ]]; then
  exec env -i UNTXT_DRILL_CLEAN=1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    "$0" "$@"
fi

cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/stack.sh
source scripts/lib/stack.sh
SELF="$REPO/scripts/drills/multihost.sh"

# ---- topology -----------------------------------------------------------------------------
NET=10.77.0
NS_PREFIX=untxt-drill-
LAN="${NS_PREFIX}lan"
declare -A IP=([stores]=$NET.10 [api1]=$NET.21 [api2]=$NET.22 [worker1]=$NET.31 [worker2]=$NET.32 [client]=$NET.100)
HOSTS=(stores api1 api2 worker1 worker2 client)
APIS=(api1 api2)
WORKERS=(worker1 worker2)
CUT_WORKER=worker1
# Longer than a slot's heartbeat TTL (15 s) plus a recovery interval (10 s): the other worker
# host's reaper takes the cut host's jobs while it is away, and the cut host comes back to find
# them gone, the case the conditional updates are there for.
CUT_SECONDS=35
REDIS_DOWN_SECONDS=5
WEBHOOK_PORT=8099
STATE_NAMES=(UNTXT_PG_PORT UNTXT_PG_PASSWORD UNTXT_REDIS_PORT UNTXT_REDIS_PASSWORD UNTXT_S3_PORT UNTXT_KMS_PORT
  UNTXT_KMS_ENDPOINT KMS_KEY_ID)

# Everything lives under one temp dir, never the checkout's var/ or logs/: stack.sh's globals
# are pointed there, so its helpers (start_bg's pid files and *.out logs, own_dir) work in it.
use_state() {
  STATE="$1"
  VAR="$STATE"; RUN="$STATE/run"; LOGS="$STATE/logs"; PG_DATA="$STATE/stores/postgres"
  export UNTXT_DRILL_STATE="$STATE"
  load_env_file "$STATE/stack.env" "${STATE_NAMES[@]}"
}
host_dir() { printf '%s/hosts/%s' "$STATE" "$1"; }

# on_host HOST COMMAND...: COMMAND (a function of this script) runs on HOST: in its network
# namespace, with its host name (worker ids carry it, so PostgreSQL's tasks.worker_id says
# which host did a task) and a /tmp of its own, as a machine of its own has. The /tmp matters:
# SeaweedFS's components talk over unix sockets at fixed /tmp paths named by port
# (/tmp/seaweedfs-master-grpc-29333.sock…), which no network namespace separates; sharing
# /tmp, the drill's store and this machine's local stack (same ports) would take over, and on
# exit delete, each other's sockets.
on_host() {
  local host="$1"; shift
  ip netns exec "$NS_PREFIX$host" unshare --uts --mount --propagation private -- "$SELF" --on-host "$host" "$@"
}
enter_host() {  # in the namespaces on_host made
  hostname "$1"
  mkdir -p "$STATE/tmp/$1"
  chmod 1777 "$STATE/tmp/$1"
  mount --bind "$STATE/tmp/$1" /tmp
  STACK_HOST="${IP[$1]}"
}
# client COMMAND...: a program run from the client host, as root (the operator's tools).
client() {
  on_host client env HOME="$STATE" UNTXT_ENV_FILE="$STATE/stack.env" "$@"
}
drill_py() { client "$PY" -m "$@"; }
mark() { printf '%s %s\n' "$1" "$(date +%s.%N)" >> "$STATE/marks"; log "$1"; }
# A sleep a signal interrupts (bash runs a trap only once its foreground command is done).
pause() { sleep "$1" & PAUSE_PID=$!; wait "$PAUSE_PID"; PAUSE_PID=; }

# ---- network ------------------------------------------------------------------------------
build_network() {
  ip netns add "$LAN"
  ip -n "$LAN" link add br0 type bridge
  ip -n "$LAN" link set br0 up
  local host
  for host in "${HOSTS[@]}"; do
    ip netns add "$NS_PREFIX$host"
    # eth0 on the host, its peer a port of the bridge ("p-HOST": the cable, to pull one later).
    ip link add eth0 netns "$NS_PREFIX$host" type veth peer name "p-$host" netns "$LAN"
    ip -n "$LAN" link set "p-$host" master br0 up
    ip -n "$NS_PREFIX$host" addr add "${IP[$host]}/24" dev eth0
    ip -n "$NS_PREFIX$host" link set lo up
    ip -n "$NS_PREFIX$host" link set eth0 up
  done
  log "network: ${HOSTS[*]} on $NET.0/24 (bridge in namespace $LAN)"
}

link_down() { ip -n "$LAN" link set "p-$1" down; }
link_up() { ip -n "$LAN" link set "p-$1" up; }

# ---- the stores host ----------------------------------------------------------------------
start_postgres_here() {
  local bin user pwfile
  bin="$(pg_bin)"; user="$(user_for postgres)"; pwfile="$STATE/stores/.pg-init-password"
  own_dir "$PG_DATA" "$user"
  printf '%s\n' "$UNTXT_PG_PASSWORD" > "$pwfile"
  own_file "$pwfile" "$user"
  own_file "$LOGS/postgres-init.log" "$user"
  run_as "$user" "$bin/initdb" -D "$PG_DATA" -U untxt --pwfile="$pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >> "$LOGS/postgres-init.log" 2>&1
  rm -f "$pwfile"
  # initdb lets in loopback only; the other hosts come over the drill's network.
  printf 'host all all %s.0/24 scram-sha-256\n' "$NET" >> "$PG_DATA/pg_hba.conf"
  ensure_port_free postgres "$UNTXT_PG_PORT"
  own_file "$LOGS/postgres.log" "$user"
  run_as "$user" "$bin/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgres.log" -w -t 60 start \
    -o "-p $UNTXT_PG_PORT -c listen_addresses=$STACK_HOST -c unix_socket_directories=''" >/dev/null
  log "started postgres as $user ($STACK_HOST:$UNTXT_PG_PORT)"
}

start_redis_here() {
  local user; user="$(user_for redis)"
  own_dir "$STATE/stores/redis" "$user"
  own_file "$LOGS/redis.log" "$user"
  # As the local stack has it: AOF, so a restart keeps the queue.
  cat > "$STATE/stores/redis/redis.conf" <<CONF
bind $STACK_HOST
port $UNTXT_REDIS_PORT
requirepass $UNTXT_REDIS_PASSWORD
dir $STATE/stores/redis
appendonly yes
appendfsync everysec
save ""
daemonize no
logfile $LOGS/redis.log
CONF
  own_file "$STATE/stores/redis/redis.conf" "$user"
  start_bg redis "redis-server $STACK_HOST:$UNTXT_REDIS_PORT" "$UNTXT_REDIS_PORT" "$user" \
    redis-server "$STATE/stores/redis/redis.conf"
  wait_for redis 20 port_open "$UNTXT_REDIS_PORT"
}

stop_redis() { stop_pid redis "redis-server $NET" 20; }

start_kms_and_s3_here() {
  local kms_user s3_user dir="$STATE/stores/seaweedfs"
  kms_user="$(user_for kms)"; s3_user="$(user_for s3)"
  own_dir "$STATE/stores/kms" "$kms_user"
  start_bg kms "devstack.kms" "$UNTXT_KMS_PORT" "$kms_user" env UNTXT_ENV_FILE="$STATE/stores/kms/kms.env" \
    "$PY" -m devstack.kms --host "$STACK_HOST" --port "$UNTXT_KMS_PORT" \
    --keystore "$STATE/stores/kms/keys.json" --ensure-key "$KMS_KEY_ID"
  wait_for kms 20 http_ok "$UNTXT_KMS_ENDPOINT/"
  own_dir "$dir" "$s3_user"
  start_bg s3 "bin/weed " "$UNTXT_S3_PORT" "$s3_user" "$REPO/.venv/bin/weed" \
    -config_dir="$dir" -logtostderr mini -options="$dir/weed.options"
  wait_for s3 60 port_open "$UNTXT_S3_PORT"
}

start_stores() {
  on_host stores start_postgres_here
  on_host stores start_redis_here
  on_host stores start_kms_and_s3_here
  # From the client host, as an operator would: the bucket (SSE-KMS required, a round trip
  # through the key service), then roles, database and schema.
  drill_py devstack.s3store bootstrap
  drill_py scripts.drills.multihost_check versioning
  drill_py database.migrate --create-database
}

# ---- API and worker hosts -----------------------------------------------------------------
prepare_app_host() {
  local dir; dir="$(host_dir "$1")"
  mkdir -p "$dir/logs" "$dir/work"
  own_dir "$dir" "$(user_for app)"
}

start_app_here() {  # start_app_here HOST MODULE PORT
  local host="$1" module="$2" port="$3"
  start_bg "$host" "-m $module" "$port" "$(user_for app)" \
    env UNTXT_ENV_FILE="$(host_dir "$host")/app.env" "$PY" -m "$module"
}

start_apps() {
  local host
  for host in "${APIS[@]}" "${WORKERS[@]}"; do prepare_app_host "$host"; done
  for host in "${WORKERS[@]}"; do on_host "$host" start_app_here "$host" worker 5000; done
  for host in "${APIS[@]}"; do on_host "$host" start_app_here "$host" backend 8080; done
  for host in "${WORKERS[@]}"; do on_host client wait_for "$host health" 90 http_ok "http://${IP[$host]}:5000/health"; done
  for host in "${APIS[@]}"; do on_host client wait_for "$host" 60 http_ok "http://${IP[$host]}:8080/health"; done
  log "API hosts ${APIS[*]} and worker hosts ${WORKERS[*]} are up"
}

create_drill_user() {
  # On an API host, with its env file: what an operator would run there.
  on_host api1 env UNTXT_ENV_FILE="$(host_dir api1)/app.env" scripts/create_user.sh drill@example.com \
    | tail -n 1 > "$STATE/api.key"
  chmod 600 "$STATE/api.key"
}

# ---- the run ------------------------------------------------------------------------------
submitted_so_far() { local submitted _; [[ -f "$STATE/progress" ]] && read -r submitted _ < "$STATE/progress" && printf '%s' "$submitted"; }
load_running() { kill -0 "$LOAD_PID" 2>/dev/null; }

# Waits for the load to have uploaded N jobs; false if it ended first.
wait_submitted() {
  local n
  until n="$(submitted_so_far)" && (( n >= $1 )); do load_running || return 1; sleep 0.5; done
}

# A worker host's own account (its jobs in flight, its outcome counters), asked on that host (a
# worker may show it to local callers only). Kept in status-LABEL.json; false if it did not answer.
worker_status() {
  on_host "$1" curl -fs --max-time 5 http://127.0.0.1:5000/status > "$STATE/status-$2.tmp" \
    && mv "$STATE/status-$2.tmp" "$STATE/status-$2.json"
}

# The cut should catch the host in the middle of a job: the case the conditional updates are
# for. Leaves its status (with the jobs it held) in status-cut.json.
wait_busy() {  # wait_busy HOST SECONDS
  local deadline=$((SECONDS + $2))
  until worker_status "$1" cut && "$PY" -c 'import json, sys; sys.exit(not json.load(open(sys.argv[1]))["inFlight"])' \
    "$STATE/status-cut.json" 2>/dev/null; do
    (( SECONDS < deadline )) || return 0
    sleep 0.2
  done
}

# Mid-run, while uploads still come in: one worker host's cable pulled and put back, then
# Redis stopped and started again (the checks fail if either came after the last task ended).
disrupt() {
  local jobs="$1"
  if wait_submitted $((jobs / 4)); then
    wait_busy "$CUT_WORKER" 20
    mark cut_start
    link_down "$CUT_WORKER"
    pause "$CUT_SECONDS"
    link_up "$CUT_WORKER"
    mark cut_end
    pause 10  # the two outages apart, so each one's effects are its own
  fi
  if wait_submitted $((jobs * 3 / 4)); then
    mark redis_stop
    on_host stores stop_redis
    pause "$REDIS_DOWN_SECONDS"
    on_host stores start_redis_here
    mark redis_up
  fi
}

run_load() {
  local jobs="$1" apis=() host
  for host in "${APIS[@]}"; do apis+=(--api "$host=http://${IP[$host]}:8080"); done
  drill_py scripts.drills.multihost_load "$STATE" "${apis[@]}" --jobs "$jobs" \
    --webhook "http://${IP[client]}:$WEBHOOK_PORT/hook" --listen "${IP[client]}:$WEBHOOK_PORT" &
  LOAD_PID=$!
  disrupt "$jobs"
  local rc=0
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=
  for host in "${WORKERS[@]}"; do worker_status "$host" "$host" || log "$host did not tell its status"; done
  return "$rc"
}

check() {
  local workers=() host
  for host in "${WORKERS[@]}"; do workers+=(--worker-log "$host=$(host_dir "$host")/logs/worker.log"); done
  drill_py scripts.drills.multihost_check verdict "$STATE" "${workers[@]}" --cut-host "$CUT_WORKER"
}

# ---- teardown -----------------------------------------------------------------------------
drill_namespaces() { ip netns list | awk -v p="$NS_PREFIX" 'index($1, p) == 1 { print $1 }'; }

# Processes still in a drill namespace, and their process groups (a worker's sandbox children
# have network namespaces of their own, but share its group): all were started by the drill.
# A process the drill did not put in a group of its own shares the drill's: only it is killed.
kill_leftovers() {
  local ns pid group mine
  mine="$(ps -o pgid= -p $$ | tr -d ' ')"
  for ns in $(drill_namespaces); do
    for pid in $(ip netns pids "$ns"); do
      group="$(ps -o pgid= -p "$pid" | tr -d ' ')"
      if [[ -n "$group" && "$group" != "$mine" ]]; then kill -KILL -- "-$group" 2>/dev/null; fi
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
}

# What a run killed before its trap could run left behind (its state dirs are /var/tmp/untxt-drill.*).
cleanup_leftovers() {
  kill_leftovers
  local ns
  for ns in $(drill_namespaces); do ip netns del "$ns"; done
  rm -rf /var/tmp/untxt-drill.*
}

stop_everything() {
  [[ -n "${STATE:-}" && -d "$STATE/run" ]] || return 0
  local host
  for host in "${APIS[@]}" "${WORKERS[@]}"; do stop_pid "$host" "-m " 20; done
  stop_pid s3 "bin/weed " 20
  stop_pid kms "devstack.kms"
  stop_redis
  if [[ -f "$PG_DATA/postmaster.pid" ]]; then pg_ctl_as_owner "$PG_DATA" -m fast -w -t 30 stop >/dev/null || true; fi
}

teardown() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [[ -n "${PAUSE_PID:-}" ]] && kill "$PAUSE_PID" 2>/dev/null
  [[ -n "${LOAD_PID:-}" ]] && kill "$LOAD_PID" 2>/dev/null && wait "$LOAD_PID" 2>/dev/null
  # Stopped mid-cut: the host's cable back first, so its worker can stop cleanly.
  ip -n "$LAN" link set "p-$CUT_WORKER" up 2>/dev/null
  stop_everything >/dev/null 2>&1
  kill_leftovers
  local ns
  for ns in $(drill_namespaces); do ip netns del "$ns"; done
  if [[ -n "${STATE:-}" && -d "$STATE" ]]; then
    if [[ -n "${KEEP_LOGS:-}" ]]; then
      mkdir -p "$KEEP_LOGS"
      cp -r "$STATE"/{logs,hosts,marks,load.json,status-*.json} "$KEEP_LOGS/" 2>/dev/null
      find "$KEEP_LOGS" -name app.env -delete  # credentials
      log "logs kept in $KEEP_LOGS"
    fi
    rm -rf "$STATE"
  fi
  log "torn down: processes, namespaces, links, $STATE"
  exit "$rc"
}

# ---- main ---------------------------------------------------------------------------------
if [[ "${1:-}" == --on-host ]]; then
  use_state "$UNTXT_DRILL_STATE"
  enter_host "$2"
  shift 2
  # A program is exec'd, so the caller's pid is the program's (the load is stopped by it).
  if declare -F "$1" >/dev/null; then "$@"; exit; fi
  exec "$@"
fi

JOBS=200
KEEP_LOGS=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) JOBS="$2"; shift 2 ;;
    --keep-logs) KEEP_LOGS="$(realpath -m "$2")"; shift 2 ;;
    --cleanup) cleanup_leftovers; exit 0 ;;
    *) die "usage: $0 [--jobs N] [--keep-logs DIR] | --cleanup" ;;
  esac
done
[[ $EUID -eq 0 ]] || die "run as root: the drill makes network namespaces"
for need in "$PY" "$REPO/.venv/bin/weed" "$(command -v redis-server)" "$(pg_bin)/initdb"; do
  [[ -x "$need" ]] || die "${need:-redis-server} is missing: run scripts/setup.sh (or ./start_services.sh) once"
done
[[ -z "$(drill_namespaces)" ]] || die "namespaces of an earlier drill exist ($(drill_namespaces | tr '\n' ' ')): $0 --cleanup"

STATE=
LOAD_PID=
PAUSE_PID=
trap teardown EXIT
trap 'exit 130' INT TERM
ensure_service_users
ensure_checkout_reachable
STATE="$(mktemp -d /var/tmp/untxt-drill.XXXXXX)"
# The service users pass through to their own 0700 directories, as in var/.
chmod 711 "$STATE"
mkdir -p "$STATE/run" "$STATE/logs" "$STATE/hosts" "$STATE/stores" "$STATE/tmp"
chmod 711 "$STATE/logs" "$STATE/hosts" "$STATE/stores" "$STATE/tmp"
chmod 700 "$STATE/run"
app_args=()
for host in "${APIS[@]}"; do app_args+=(--api "$host=${IP[$host]}"); done
for host in "${WORKERS[@]}"; do app_args+=(--worker "$host"); done
env -i HOME="$STATE" "$PY" -m scripts.drills.multihost_env "$STATE" --stores-ip "${IP[stores]}" "${app_args[@]}"
use_state "$STATE"

build_network
start_stores
start_apps
create_drill_user
SECONDS=0
run_load "$JOBS" || log "the load ended with an error (the check says what is missing)"
log "load done in ${SECONDS}s"
check
