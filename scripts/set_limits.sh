#!/usr/bin/env bash
# A user's own quotas and express-lane grant (operators):
#   set_limits.sh EMAIL [--max-tasks N|default] [--max-pages N|default] [--max-bytes N|default]
#                       [--express | --no-express]
# With only EMAIL, prints the user's limits and usage.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: $0 EMAIL [--max-tasks N|default] [--max-pages N|default] [--max-bytes N|default] [--express|--no-express]" >&2; exit 2; }
exec .venv/bin/python -m backend.users limits "$@"
