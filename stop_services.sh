#!/usr/bin/env bash
# Stop everything start_services.sh started, in reverse order, gracefully (SIGTERM, wait, SIGKILL).
# Stores configured from outside (DATABASE_URL, REDIS_URL, S3_*) are never touched.
#   ./stop_services.sh             everything
#   ./stop_services.sh --app-only  the API and the worker only
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib/stack.sh
load_stack_state

stop_pid api "-m backend" 20
stop_pid worker "-m worker" 60
[[ "${1:-}" == "--app-only" ]] && exit 0
stop_pid s3 "bin/weed " 20
stop_pid kms "devstack.kms" 10
stop_pid redis "redis-server" 20
if [[ ${LOCAL_PG:-0} == 1 ]]; then
  data="$PG_DATA"
  if [[ -f "$data/postmaster.pid" ]] && pg_ctl_as_owner "$data" status >/dev/null 2>&1; then
    pg_ctl_as_owner "$data" -m fast -w -t 60 stop >/dev/null
    log "stopped postgres"
  else
    log "postgres not running"
  fi
fi
