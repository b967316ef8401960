#!/usr/bin/env bash
# Revoke API keys; a revoked key gets 401 on its next request.
#   revoke_key.sh --email EMAIL    every key of that user
#   revoke_key.sh --key KEY        one key
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 2 ]] || { echo "usage: $0 --email EMAIL | --key KEY" >&2; exit 2; }
exec .venv/bin/python -m backend.users revoke "$@"
