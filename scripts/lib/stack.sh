# Shared helpers for start_services.sh, stop_services.sh and status.sh. Source, don't run.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR="$REPO/var"
RUN="$VAR/run"
LOGS="$REPO/logs"
PY="$REPO/.venv/bin/python"
# Everything the scripts and the services they start create (env files, Redis's AOF, the
# filer's metadata, logs, sockets) is private to its owner.
umask 077

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---- env files: parsed as data, never sourced -------------------------------------------
# A file under var/ that someone else could write must not be able to run code as the user
# running these scripts (root, often), so KEY=VALUE lines are read as text and only the names
# the caller asks for are taken. Values the caller's environment already set win; nothing read
# here is exported, so the services see only what each one is given.
load_env_file() {  # load_env_file FILE NAME...
  local file="$1" key value name; shift
  [[ -f "$file" ]] || return 0
  while IFS='=' read -r key value; do
    for name in "$@"; do
      if [[ "$key" == "$name" && -z "${!name+x}" ]]; then printf -v "$name" '%s' "$value"; fi
    done
  done < "$file"
}

# The names the scripts use from var/local.env (what devstack/localenv.py writes).
STACK_ENV_NAMES=(UNTXT_PG_PORT UNTXT_REDIS_PORT UNTXT_S3_PORT UNTXT_KMS_PORT UNTXT_PG_PASSWORD
  UNTXT_REDIS_PASSWORD UNTXT_KMS_ENDPOINT S3_BUCKET KMS_KEY_ID)

# Decide once, from the caller's environment alone, which stores run locally.
decide_local_parts() {
  LOCAL_PG=0; LOCAL_REDIS=0; LOCAL_S3=0
  [[ -n "${DATABASE_URL:-}" ]] || LOCAL_PG=1
  [[ -n "${REDIS_URL:-}" ]] || LOCAL_REDIS=1
  # An own S3 (AWS or compatible) is configured by naming its bucket or endpoint.
  [[ -n "${S3_ENDPOINT_URL:-}" || -n "${S3_BUCKET:-}" ]] || LOCAL_S3=1
}

write_local_env() {
  local flags=()
  [[ $LOCAL_PG == 1 ]] && flags+=(--local-pg)
  [[ $LOCAL_REDIS == 1 ]] && flags+=(--local-redis)
  [[ $LOCAL_S3 == 1 ]] && flags+=(--local-s3)
  (cd "$REPO" && "$PY" -m devstack.localenv "${flags[@]}")
  load_env_file "$VAR/local.env" "${STACK_ENV_NAMES[@]}"
}

save_stack_state() {
  printf 'LOCAL_PG=%s\nLOCAL_REDIS=%s\nLOCAL_S3=%s\n' "$LOCAL_PG" "$LOCAL_REDIS" "$LOCAL_S3" > "$RUN/stack.env"
}

# Recorded choices of the last start, so stop/status agree with it. Each flag is 0 or 1;
# anything else in the file is ignored (and the flag falls back to the environment's choice).
load_stack_state() {
  decide_local_parts
  local key value
  if [[ -f "$RUN/stack.env" ]]; then
    while IFS='=' read -r key value; do
      case "$key=$value" in
        LOCAL_PG=[01] | LOCAL_REDIS=[01] | LOCAL_S3=[01]) printf -v "$key" '%s' "$value" ;;
      esac
    done < "$RUN/stack.env"
  fi
  load_env_file "$VAR/local.env" "${STACK_ENV_NAMES[@]}"
}

# ---- who runs what ------------------------------------------------------------------------
# Started as root, each part runs as its own system user, so a flaw in one reaches only its own
# files: the app (API + worker, which parse untrusted uploads) cannot read the KMS master keys
# or the stores' data, the key service cannot read the stores, and each store only its own data.
# PostgreSQL refuses root anyway. Started by anyone else, everything runs as that user.
declare -A PART_USER=([postgres]=untxt-pg [redis]=untxt-redis [kms]=untxt-kms [s3]=untxt-s3 [app]=untxt-app)

user_for() {  # user_for PART
  if [[ $EUID -eq 0 ]]; then printf '%s' "${PART_USER[$1]}"; else id -un; fi
}

ensure_service_users() {
  [[ $EUID -eq 0 ]] || return 0
  local user
  for user in "${PART_USER[@]}"; do
    id "$user" >/dev/null 2>&1 && continue
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
  done
}

# as_user USER: AS_USER becomes the prefix that runs a command as USER, with only USER's own
# group (root's supplementary groups dropped), no way back up through setuid binaries, and
# USER's own HOME (not root's, whose ~/.postgresql or ~/.aws a library would otherwise try).
# setpriv and env exec in place (runuser forks and waits), so a recorded pid is the service's.
as_user() {
  AS_USER=()
  if [[ $EUID -eq 0 && "$1" != root ]]; then
    AS_USER=(setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups --no-new-privs --
      env HOME="$(getent passwd "$1" | cut -d: -f6)")
  fi
}
run_as() {  # run_as USER COMMAND...
  as_user "$1"; shift
  "${AS_USER[@]}" "$@"
}

owner_of() { stat -c %U "$1"; }

# The service users run this checkout's code and keep their data in its var/, so they must be
# able to reach it: a checkout under a private home (/root, say) is refused with the reason.
ensure_checkout_reachable() {
  [[ $EUID -eq 0 ]] || return 0
  run_as "${PART_USER[app]}" test -r "$REPO/start_services.sh" -a -x "$VAR" \
    || die "the service users cannot reach $REPO (a parent directory is private): move the checkout (e.g. under /srv or /opt) or start it as a non-root user"
}

# own_dir DIR USER: DIR exists, belongs to USER (with everything in it, when it did not before:
# a part started by an older checkout as another user) and it and its contents are private to
# USER (files an older start made under umask 022 included).
own_dir() {
  local dir="$1" user="$2"
  mkdir -p "$dir"
  if [[ $EUID -eq 0 && "$(owner_of "$dir")" != "$user" ]]; then chown -R "$user:$(id -g "$user")" "$dir"; fi
  chmod -R go= "$dir"
  chmod 700 "$dir"
}

# own_file FILE USER: FILE exists (created empty if not), belongs to USER, mode 0600.
own_file() {
  local file="$1" user="$2"
  [[ -e "$file" ]] || : > "$file"
  [[ $EUID -eq 0 ]] && chown "$user:$(id -g "$user")" "$file"
  chmod 600 "$file"
}

# var/ belongs to root (whoever could write it could plant the env files these scripts read);
# services may only pass through it (0711) to their own 0700 directory.
prepare_var() {
  mkdir -p "$VAR" "$RUN" "$LOGS"
  if [[ $EUID -eq 0 ]]; then chown root:root "$VAR" "$RUN" "$LOGS"; fi
  chmod 711 "$VAR" "$LOGS"
  chmod 700 "$RUN"
  # Logs of older starts (umask 022) become private too.
  find "$LOGS" -maxdepth 1 -type f \( -name '*.log' -o -name '*.out' \) -exec chmod go= {} +
  local file
  for file in "$VAR/secrets.env" "$VAR/local.env" "$RUN/stack.env"; do
    [[ -e "$file" ]] || continue
    [[ $EUID -eq 0 ]] && chown root:root "$file"
    chmod 600 "$file"
  done
}

# ---- processes ----------------------------------------------------------------------------
# The address the services listen on: loopback for this stack; a script whose services listen
# on another address (scripts/drills/multihost.sh) sets it after sourcing this file, so the
# port checks of start_bg and wait_for look where the service is.
STACK_HOST=127.0.0.1
port_open() { (exec 3<>"/dev/tcp/$STACK_HOST/$1") 2>/dev/null; }

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
pid_uid() { awk '/^Uid:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# A port held by a process this checkout did not start (another checkout's stack, say) would
# make the new service fail obscurely or, worse, make us talk to the wrong one.
ensure_port_free() {  # NAME PORT
  if port_open "$2"; then die "$1: port $2 is already in use by another process (another untxt checkout?)"; fi
}

# start_bg NAME PATTERN PORT USER COMMAND...: start COMMAND as USER, detached, in its own
# session, logging to logs/NAME.out (0600, USER's). One already running as another user (an
# older start, before each part had its own) is restarted as USER.
start_bg() {
  local name="$1" pattern="$2" port="$3" user="$4"; shift 4
  if pid_alive "$name" "$pattern"; then
    if [[ "$(pid_uid "$(pid_of "$name")")" == "$(id -u "$user")" ]]; then
      log "$name already running (pid $(pid_of "$name"))"; return 0
    fi
    log "$name runs as another user than $user: restarting it"
    stop_pid "$name" "$pattern"
  fi
  ensure_port_free "$name" "$port"
  own_file "$LOGS/$name.out" "$user"
  # A lone simple command after `&`, so $! is the service itself (setsid, nohup and setpriv
  # exec it).
  as_user "$user"
  (cd "$REPO" || exit 1; setsid nohup "${AS_USER[@]}" "$@" >> "$LOGS/$name.out" 2>&1 < /dev/null & echo $! > "$RUN/$name.pid")
  log "started $name as $user (pid $(pid_of "$name"))"
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

# ---- PostgreSQL ---------------------------------------------------------------------------
pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$dir" ]] || die "PostgreSQL server binaries not found (scripts/setup.sh installs them)"
  printf '%s' "$dir"
}

PG_DATA="$VAR/postgres"

# pg_ctl as whoever owns the cluster (an older start's user, until the cluster moves).
pg_ctl_as_owner() {
  local data="$1"; shift
  run_as "$(owner_of "$data")" "$(pg_bin)/pg_ctl" -D "$data" "$@"
}
