#!/usr/bin/env bash
# Let a task whose file crashed its readers be retried as if it never had (operators; a user's
# retry keeps the count, so a poison file cannot crash worker after worker).
#   reset_crashes.sh TASK_ID
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 1 ]] || { echo "usage: $0 TASK_ID" >&2; exit 2; }
exec .venv/bin/python -m backend.users reset-crashes "$@"
