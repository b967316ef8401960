#!/usr/bin/env bash
# Create (or reuse) a user and print a new API key as the last line.
#   create_user.sh EMAIL [--operator]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: $0 EMAIL [--operator]" >&2; exit 2; }
exec .venv/bin/python -m backend.users create "$@"
