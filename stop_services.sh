#!/usr/bin/env bash
# Stop everything start_services.sh started, in reverse order, gracefully (SIGTERM, wait, SIGKILL).
# Stores configured from outside (DATABASE_URL, REDIS_URL, S3_*) are never touched.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib/stack.sh
load_stack_state

stop_pid api "-m backend" 20
stop_pid worker "-m worker" 60
stop_pid s3 "weed mini" 20
stop_pid kms "devstack.kms" 10
stop_pid redis "redis-server" 20
if [[ ${LOCAL_PG:-0} == 1 ]]; then
  data="$(pg_data_dir)"
  if [[ -f "$data/postmaster.pid" ]] && as_pg_user "$(pg_bin)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg_user "$(pg_bin)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    log "stopped postgres"
  else
    log "postgres not running"
  fi
fi
