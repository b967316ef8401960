# Shared helpers for start_services.sh, stop_services.sh and status.sh. Source, don't run.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR="$REPO/var"
RUN="$VAR/run"
LOGS="$REPO/logs"
PY="$REPO/.venv/bin/python"
mkdir -p "$RUN" "$LOGS"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Export KEY=VALUE lines from a file, never overriding what the caller's environment already set.
load_env_file() {
  local file="$1" key value
  [[ -f "$file" ]] || return 0
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
    if [[ -z "${!key+x}" ]]; then export "$key=$value"; fi
  done < "$file"
}

# Decide once, from the caller's environment alone, which stores run locally.
decide_local_parts() {
  LOCAL_PG=0; LOCAL_REDIS=0; LOCAL_S3=0
  [[ -n "${DATABASE_URL:-}" ]] || LOCAL_PG=1
  [[ -n "${REDIS_URL:-}" ]] || LOCAL_REDIS=1
  # An own S3 (AWS or compatible) is configured by naming its bucket or endpoint.
  [[ -n "${S3_ENDPOINT_URL:-}" || -n "${S3_BUCKET:-}" ]] || LOCAL_S3=1
  export LOCAL_PG LOCAL_REDIS LOCAL_S3
}

write_local_env() {
  local flags=()
  [[ $LOCAL_PG == 1 ]] && flags+=(--local-pg)
  [[ $LOCAL_REDIS == 1 ]] && flags+=(--local-redis)
  [[ $LOCAL_S3 == 1 ]] && flags+=(--local-s3)
  (cd "$REPO" && "$PY" -m devstack.localenv "${flags[@]}")
  load_env_file "$VAR/local.env"
}

# Recorded choices of the last start, so stop/status agree with it.
load_stack_state() {
  if [[ -f "$RUN/stack.env" ]]; then
    # shellcheck disable=SC1091
    source "$RUN/stack.env"
  else
    decide_local_parts
  fi
  load_env_file "$VAR/local.env"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for DESCRIPTION SECONDS COMMAND...
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    (( SECONDS < deadline )) || { log "$what did not become ready in ${secs}s"; return 1; }
    sleep 0.3
  done
}

http_ok() { curl -fs -o /dev/null --max-time 2 "$1"; }

# pid_alive NAME PATTERN: the pidfile's process exists and its command line matches PATTERN
# (a recycled pid belonging to something else does not count).
pid_of() { [[ -f "$RUN/$1.pid" ]] && cat "$RUN/$1.pid"; }
pid_alive() {
  local pid; pid="$(pid_of "$1")" || return 1
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2"
}

# A port held by a process this checkout did not start (another checkout's stack, say) would
# make the new service fail obscurely or, worse, make us talk to the wrong one.
ensure_port_free() {  # NAME PORT
  if port_open "$2"; then die "$1: port $2 is already in use by another process (another untxt checkout?)"; fi
}

# start_bg NAME PATTERN PORT COMMAND...: start COMMAND detached, logging to logs/NAME.out.
start_bg() {
  local name="$1" pattern="$2" port="$3"; shift 3
  if pid_alive "$name" "$pattern"; then log "$name already running (pid $(pid_of "$name"))"; return 0; fi
  ensure_port_free "$name" "$port"
  # A lone simple command after `&`, so $! is the service itself (setsid and nohup exec it).
  (cd "$REPO" || exit 1; setsid nohup "$@" >> "$LOGS/$name.out" 2>&1 < /dev/null & echo $! > "$RUN/$name.pid")
  log "started $name (pid $(pid_of "$name"))"
}

# stop_pid NAME PATTERN [SECONDS]: SIGTERM, wait, then SIGKILL.
stop_pid() {
  local name="$1" pattern="$2" secs="${3:-15}" pid
  if ! pid_alive "$name" "$pattern"; then rm -f "$RUN/$name.pid"; log "$name not running"; return 0; fi
  pid="$(pid_of "$name")"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in ${secs}s; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
  log "stopped $name"
}

# PostgreSQL refuses to run as root: run it as a dedicated unprivileged user when we are root.
PG_USER_NAME="untxt"
as_pg_user() {
  if [[ $EUID -eq 0 ]]; then runuser -u "$PG_USER_NAME" -- "$@"; else "$@"; fi
}

pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$dir" ]] || die "PostgreSQL server binaries not found (scripts/setup.sh installs them)"
  printf '%s' "$dir"
}

pg_data_dir() {
  # The data dir must be reachable by the unprivileged user; a checkout under a private home
  # (e.g. /root) is not, so fall back to a per-checkout folder under /var/lib.
  if [[ $EUID -ne 0 ]] || runuser -u "$PG_USER_NAME" -- test -x "$VAR" 2>/dev/null; then
    printf '%s' "$VAR/postgres"
  else
    printf '/var/lib/untxt-dev/%s/postgres' "$(printf '%s' "$REPO" | sha1sum | cut -c1-12)"
  fi
}
