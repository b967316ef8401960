#!/usr/bin/env bash
# One line per part of the stack (up/down, pid, port), then the queue lengths.
set -uo pipefail
cd "$(dirname "$0")"
source scripts/lib/stack.sh
if [[ ! -f "$VAR/local.env" ]]; then  # written by every start; without it no port is known
  echo "the stack has not been started from this checkout: ./start_services.sh"
  exit 3
fi
load_stack_state

row() { printf '%-10s %-5s pid=%-8s %s\n' "$1" "$2" "${3:--}" "$4"; }
proc_row() {  # NAME PATTERN PORT
  if pid_alive "$1" "$2" && port_open "$3"; then row "$1" up "$(pid_of "$1")" "port $3"
  else row "$1" down "" "port $3"; fi
}

if [[ ${LOCAL_PG:-0} == 1 ]]; then
  data="$PG_DATA"
  pgpid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
  if [[ -n "$pgpid" ]] && port_open "$UNTXT_PG_PORT"; then row postgres up "$pgpid" "port $UNTXT_PG_PORT"
  else row postgres down "" "port $UNTXT_PG_PORT"; fi
else
  row postgres external "" "DATABASE_URL"
fi
if [[ ${LOCAL_REDIS:-0} == 1 ]]; then proc_row redis "redis-server" "$UNTXT_REDIS_PORT"; else row redis external "" "REDIS_URL"; fi
if [[ ${LOCAL_S3:-0} == 1 ]]; then
  proc_row kms "devstack.kms" "$UNTXT_KMS_PORT"
  proc_row s3 "bin/weed " "$UNTXT_S3_PORT"
else
  row s3 external "" "${S3_ENDPOINT_URL:-AWS}"
fi
proc_row worker "-m worker" "${WORKER_HEALTH_PORT:-5000}"
if http_ok "http://${WORKER_HEALTH_HOST:-127.0.0.1}:${WORKER_HEALTH_PORT:-5000}/health"; then
  row health up "$(pid_of worker)" "http://${WORKER_HEALTH_HOST:-127.0.0.1}:${WORKER_HEALTH_PORT:-5000}/health"
else
  row health down "" "port ${WORKER_HEALTH_PORT:-5000}"
fi
proc_row api "-m backend" "${API_PORT:-8080}"

"$PY" -m worker.report 2>/dev/null || echo "queues     unavailable (Redis down?)"
