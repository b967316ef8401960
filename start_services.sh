#!/usr/bin/env bash
# Start the whole untxt stack, each part only if it is not already running, in order, waiting
# for each to be healthy: PostgreSQL, Redis, KMS + S3 store, migrations, worker (+ its Flask
# health app), API. Parts whose standard env var is set (DATABASE_URL, REDIS_URL,
# S3_ENDPOINT_URL / S3_BUCKET) are used as given instead of being started locally.
#
#   ./start_services.sh              everything
#   ./start_services.sh --infra-only stores and migrations only (what the tests need)
set -euo pipefail
cd "$(dirname "$0")"
INFRA_ONLY=0
[[ "${1:-}" == "--infra-only" ]] && INFRA_ONLY=1

scripts/setup.sh
source scripts/lib/stack.sh

decide_local_parts
write_local_env
printf 'LOCAL_PG=%s\nLOCAL_REDIS=%s\nLOCAL_S3=%s\n' "$LOCAL_PG" "$LOCAL_REDIS" "$LOCAL_S3" > "$RUN/stack.env"

start_postgres() {
  local bin data
  if [[ $EUID -eq 0 ]] && ! id "$PG_USER_NAME" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER_NAME"
  fi
  bin="$(pg_bin)"; data="$(pg_data_dir)"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initialising PostgreSQL cluster in $data"
    mkdir -p "$data"
    [[ $EUID -eq 0 ]] && chown "$PG_USER_NAME" "$data" "$(dirname "$data")"
    chmod 700 "$data"
    local pwfile; pwfile="$(dirname "$data")/.pwfile"
    (umask 077; printf '%s\n' "$UNTXT_PG_PASSWORD" > "$pwfile")
    [[ $EUID -eq 0 ]] && chown "$PG_USER_NAME" "$pwfile"
    as_pg_user "$bin/initdb" -D "$data" -U untxt --pwfile="$pwfile" --auth=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >> "$LOGS/postgres-init.log" 2>&1
    rm -f "$pwfile"
  fi
  if as_pg_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "postgres already running (port $UNTXT_PG_PORT)"
  else
    ensure_port_free postgres "$UNTXT_PG_PORT"
    touch "$LOGS/postgres.log"
    [[ $EUID -eq 0 ]] && chown "$PG_USER_NAME" "$LOGS/postgres.log"
    as_pg_user "$bin/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w -t 60 start \
      -o "-p $UNTXT_PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" >/dev/null
    log "started postgres (port $UNTXT_PG_PORT)"
  fi
}

start_redis() {
  local conf="$VAR/redis/redis.conf"
  mkdir -p "$VAR/redis"
  (umask 077; cat > "$conf" <<EOF
bind 127.0.0.1
port $UNTXT_REDIS_PORT
requirepass $UNTXT_REDIS_PASSWORD
dir $VAR/redis
appendonly yes
appendfsync everysec
save ""
daemonize no
logfile $LOGS/redis.log
EOF
)
  start_bg redis "redis-server 127.0.0.1:$UNTXT_REDIS_PORT" "$UNTXT_REDIS_PORT" redis-server "$conf"
}

start_kms_and_s3() {
  start_bg kms "devstack.kms" "$UNTXT_KMS_PORT" "$PY" -m devstack.kms --port "$UNTXT_KMS_PORT" \
    --keystore "$VAR/kms/keys.json" --ensure-key "$KMS_KEY_ID"
  wait_for "kms" 20 http_ok "$UNTXT_KMS_ENDPOINT/"
  "$PY" -m devstack.s3store config "$VAR/seaweedfs/s3.json"
  mkdir -p "$VAR/seaweedfs/data"
  local p=$UNTXT_S3_PORT
  start_bg s3 "weed mini" "$p" "$REPO/.venv/bin/weed" mini -dir="$VAR/seaweedfs/data" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$p" -s3.port.grpc=$((p + 10000)) \
    -s3.config="$VAR/seaweedfs/s3.json" -master.port=$((p + 1000)) -master.port.grpc=$((p + 11000)) \
    -volume.port=$((p + 1007)) -volume.port.grpc=$((p + 11007)) -filer.port=$((p + 555)) \
    -filer.port.grpc=$((p + 10555)) -admin.port=$((p + 313)) -admin.port.grpc=$((p + 10313)) \
    -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false
  (cd "$REPO" && "$PY" -m devstack.s3store bootstrap)
  log "S3 store ready (bucket $S3_BUCKET, SSE-KMS key $KMS_KEY_ID)"
}

[[ $LOCAL_PG == 1 ]] && start_postgres
[[ $LOCAL_REDIS == 1 ]] && { start_redis; wait_for "redis" 20 port_open "$UNTXT_REDIS_PORT"; }
[[ $LOCAL_S3 == 1 ]] && start_kms_and_s3

(cd "$REPO" && "$PY" -m database.migrate --create-database)

if [[ $INFRA_ONLY == 1 ]]; then exit 0; fi

start_bg worker "-m worker" "${WORKER_HEALTH_PORT:-5000}" "$PY" -m worker
wait_for "worker health" 60 http_ok "http://${WORKER_HEALTH_HOST:-127.0.0.1}:${WORKER_HEALTH_PORT:-5000}/health"
start_bg api "-m backend" "${API_PORT:-8080}" "$PY" -m backend
wait_for "api" 30 http_ok "http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}/health"
log "untxt is up: API http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}  worker health http://${WORKER_HEALTH_HOST:-127.0.0.1}:${WORKER_HEALTH_PORT:-5000}/health"
