#!/usr/bin/env bash
# Install what untxt needs on this machine: Debian packages (PostgreSQL, Redis, Tesseract's
# traineddata) when missing, and the project's virtualenv from the pinned requirements.
# Idempotent and quick when everything is already there.
set -euo pipefail
# What this installs (.venv) must stay readable by the services' users; the stack scripts that
# call this use umask 077 for everything else.
umask 022
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
# setpriv starts each service as its own user (scripts/lib/stack.sh); as root, .venv is built on
# the system's Python (see below), which needs venv.
[[ $EUID -eq 0 ]] && { /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv); }
command -v setpriv >/dev/null || need_pkgs+=(util-linux)
# A C load generator for the API benchmark (scripts/bench/api_latency.py).
command -v wrk >/dev/null || need_pkgs+=(wrk)
# The dashboard's browser tests drive Debian's Chromium (tests/e2e/test_dashboard.py); Playwright
# is told to use it and never downloads a browser of its own.
command -v chromium >/dev/null || need_pkgs+=(chromium)

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

# Started as root, the services run as unprivileged users (scripts/lib/stack.sh), who must be
# able to run .venv's interpreter: one under a private home (pyenv's in /root, say) is out of
# their reach, so then the system's python3 builds .venv instead (and an old .venv built on such
# an interpreter is rebuilt).
runs_unprivileged() {  # runs_unprivileged PYTHON: not root, or others may reach it and its stdlib
  [[ $EUID -ne 0 ]] && return 0
  local path dir
  for path in $("$1" -c 'import os, sys; print(sys.executable, os.__file__)'); do
    dir="$(readlink -f "$path")"
    while [[ "$dir" != / ]]; do
      dir="$(dirname "$dir")"
      (( 0$(stat -c %a "$dir") & 1 )) || return 1
    done
  done
}
PYTHON="${PYTHON:-python3}"
if ! runs_unprivileged "$PYTHON"; then
  PYTHON=/usr/bin/python3
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11+ is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
if [[ -x .venv/bin/python ]] && ! runs_unprivileged .venv/bin/python; then
  echo "rebuilding .venv on $PYTHON (its interpreter is out of the service users' reach)"
  rm -rf .venv
fi
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.requirements.sha256"
want="$(cat requirements*.txt backend/requirements.txt worker/requirements.txt untxt/requirements.txt pyproject.toml \
  | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" || ! -x .venv/bin/untxt ]]; then
  echo "installing Python requirements into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  # The project itself, for the `untxt` command: editable, so .venv/bin/untxt always runs this
  # checkout's untxt/ (a copy would go stale at the next edit, and this stamp would not notice).
  # Its dependencies are the pins above; the build uses the pinned setuptools, not a download.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
