#!/usr/bin/env bash
# Install what untxt needs on this machine: Debian packages (PostgreSQL, Redis, Tesseract's
# traineddata) when missing, and the project's virtualenv from the pinned requirements.
# Idempotent and quick when everything is already there.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"

need_pkgs=()
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || need_pkgs+=(postgresql)
for lang in eng vie; do
  [[ -f "/usr/share/tesseract-ocr/5/tessdata/$lang.traineddata" ]] || need_pkgs+=("tesseract-ocr-$lang")
done
# The CLI is the baseline the benchmarks compare against; the service itself uses tesserocr.
command -v tesseract >/dev/null || need_pkgs+=(tesseract-ocr)
command -v curl >/dev/null || need_pkgs+=(curl)
# A C load generator for the API benchmark (scripts/bench/api_latency.py).
command -v wrk >/dev/null || need_pkgs+=(wrk)

if ((${#need_pkgs[@]})); then
  SUDO=""
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install: ${need_pkgs[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# A Debian postgresql install may start a cluster on 5432; untxt runs its own, so leave it be.

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11+ is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.requirements.sha256"
want="$(cat requirements*.txt backend/requirements.txt worker/requirements.txt | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "installing Python requirements into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
