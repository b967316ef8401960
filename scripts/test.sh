#!/usr/bin/env bash
# The test command (the README's and CI's): install what is missing, start the stores the tests
# need (PostgreSQL, Redis, S3 + KMS; idempotent), lint, then run every test.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -q
set -euo pipefail
cd "$(dirname "$0")/.."
./start_services.sh --infra-only
umask 077
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
