#!/usr/bin/env bash
# Create (or reuse) a user and print a new API key as the last line.  Usage: create_user.sh EMAIL
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 1 ]] || { echo "usage: $0 EMAIL" >&2; exit 2; }
exec .venv/bin/python -m backend.users create "$1"
