#!/usr/bin/env bash
# Start the whole untxt stack, each part only if it is not already running, in order, waiting
# for each to be healthy: PostgreSQL, Redis, KMS + S3 store, migrations, worker (+ its Flask
# health app), API. Parts whose standard env var is set (DATABASE_URL, REDIS_URL,
# S3_ENDPOINT_URL / S3_BUCKET) are used as given instead of being started locally. Started as
# root, each part runs as its own unprivileged system user (scripts/lib/stack.sh says why).
#
#   ./start_services.sh              everything
#   ./start_services.sh --infra-only stores and migrations only (what the tests need)
set -euo pipefail
cd "$(dirname "$0")"
INFRA_ONLY=0
[[ "${1:-}" == "--infra-only" ]] && INFRA_ONLY=1

scripts/setup.sh
source scripts/lib/stack.sh

ensure_service_users
prepare_var
ensure_checkout_reachable
decide_local_parts
APP_USER="$(user_for app)"
own_dir "$VAR/app" "$APP_USER"
[[ $LOCAL_S3 == 1 ]] && own_dir "$VAR/kms" "$(user_for kms)"
write_local_env
save_stack_state
own_file "$VAR/app/app.env" "$APP_USER"

start_postgres() {
  local bin data user
  bin="$(pg_bin)"; data="$PG_DATA"; user="$(user_for postgres)"
  if [[ -f "$data/PG_VERSION" ]] && pg_ctl_as_owner "$data" status >/dev/null 2>&1; then
    if [[ "$(owner_of "$data")" == "$user" ]]; then
      log "postgres already running (port $UNTXT_PG_PORT)"; return 0
    fi
    log "postgres runs as $(owner_of "$data"), not $user: restarting it"
    pg_ctl_as_owner "$data" -m fast -w -t 60 stop >/dev/null
  fi
  mkdir -p "$(dirname "$data")"
  own_dir "$data" "$user"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initialising PostgreSQL cluster in $data"
    # The superuser's password, readable by initdb (running as $user) and removed at once.
    local pwfile; pwfile="$(dirname "$data")/.pg-init-password"
    printf '%s\n' "$UNTXT_PG_PASSWORD" > "$pwfile"
    own_file "$pwfile" "$user"
    own_file "$LOGS/postgres-init.log" "$user"
    run_as "$user" "$bin/initdb" -D "$data" -U untxt --pwfile="$pwfile" --auth=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >> "$LOGS/postgres-init.log" 2>&1
    rm -f "$pwfile"
  fi
  ensure_port_free postgres "$UNTXT_PG_PORT"
  own_file "$LOGS/postgres.log" "$user"
  run_as "$user" "$bin/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w -t 60 start \
    -o "-p $UNTXT_PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" >/dev/null
  log "started postgres as $user (port $UNTXT_PG_PORT)"
}

start_redis() {
  local user; user="$(user_for redis)"
  own_dir "$VAR/redis" "$user"
  own_file "$LOGS/redis.log" "$user"
  cat > "$VAR/redis/redis.conf" <<CONF
bind 127.0.0.1
port $UNTXT_REDIS_PORT
requirepass $UNTXT_REDIS_PASSWORD
dir $VAR/redis
appendonly yes
appendfsync everysec
save ""
daemonize no
logfile $LOGS/redis.log
CONF
  own_file "$VAR/redis/redis.conf" "$user"
  start_bg redis "redis-server 127.0.0.1:$UNTXT_REDIS_PORT" "$UNTXT_REDIS_PORT" "$user" \
    redis-server "$VAR/redis/redis.conf"
}

start_kms_and_s3() {
  local kms_user s3_user
  kms_user="$(user_for kms)"; s3_user="$(user_for s3)"
  own_file "$VAR/kms/kms.env" "$kms_user"
  [[ -f "$VAR/kms/keys.json" ]] && own_file "$VAR/kms/keys.json" "$kms_user"
  start_bg kms "devstack.kms" "$UNTXT_KMS_PORT" "$kms_user" env UNTXT_ENV_FILE="$VAR/kms/kms.env" \
    "$PY" -m devstack.kms --port "$UNTXT_KMS_PORT" --keystore "$VAR/kms/keys.json" --ensure-key "$KMS_KEY_ID"
  wait_for "kms" 20 http_ok "$UNTXT_KMS_ENDPOINT/"
  own_dir "$VAR/seaweedfs" "$s3_user"
  # Credentials, the KMS provider, mTLS + JWT keys for the internal ports, every port: files
  # of the S3 user only (devstack/s3store.py). A running store whose files changed restarts.
  local configs=("$VAR/seaweedfs/s3.json" "$VAR/seaweedfs/weed.options" "$VAR/seaweedfs/security.toml") before
  before="$({ cat "${configs[@]}" 2>/dev/null || true; } | sha256sum)"  # none yet on a first start
  "$PY" -m devstack.s3store config "$VAR/seaweedfs"
  [[ $EUID -eq 0 ]] && chown -R "$s3_user:$(id -g "$s3_user")" "$VAR/seaweedfs"
  if [[ "$(cat "${configs[@]}" | sha256sum)" != "$before" ]] && pid_alive s3 "bin/weed "; then
    log "S3 store configuration changed: restarting it"
    stop_pid s3 "bin/weed " 20
  fi
  # weed reads security.toml from -config_dir; every other option from the options file, so
  # no secret shows on its (world-readable) command line.
  start_bg s3 "bin/weed " "$UNTXT_S3_PORT" "$s3_user" "$REPO/.venv/bin/weed" \
    -config_dir="$VAR/seaweedfs" -logtostderr mini -options="$VAR/seaweedfs/weed.options"
  (cd "$REPO" && "$PY" -m devstack.s3store bootstrap)
  log "S3 store ready (bucket $S3_BUCKET requires SSE-KMS with key $KMS_KEY_ID)"
}

[[ $LOCAL_PG == 1 ]] && start_postgres
[[ $LOCAL_REDIS == 1 ]] && { start_redis; wait_for "redis" 20 port_open "$UNTXT_REDIS_PORT"; }
[[ $LOCAL_S3 == 1 ]] && start_kms_and_s3

# Roles and database (with the superuser, local cluster only), then migrations as the schema
# owner (database/roles.py).
(cd "$REPO" && "$PY" -m database.migrate --create-database)

if [[ $INFRA_ONLY == 1 ]]; then exit 0; fi

# The API and the worker read their own env file (no superuser, no KMS credentials) and write
# their temp files under var/work and their logs to logs/{api,worker}.log.
own_dir "$VAR/work" "$APP_USER"
for f in api.log worker.log; do own_file "$LOGS/$f" "$APP_USER"; done
APP_ENV=(env UNTXT_ENV_FILE="$VAR/app/app.env")
start_bg worker "-m worker" "${WORKER_HEALTH_PORT:-5000}" "$APP_USER" "${APP_ENV[@]}" "$PY" -m worker
wait_for "worker health" 60 http_ok "http://${WORKER_HEALTH_HOST:-127.0.0.1}:${WORKER_HEALTH_PORT:-5000}/health"
start_bg api "-m backend" "${API_PORT:-8080}" "$APP_USER" "${APP_ENV[@]}" "$PY" -m backend
wait_for "api" 30 http_ok "http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}/health"
log "untxt is up: API http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}  worker health http://${WORKER_HEALTH_HOST:-127.0.0.1}:${WORKER_HEALTH_PORT:-5000}/health"
