#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv and fetch the demo data.
# Safe to run again: it only installs what is missing. Needs python3.11+ with venv, and npm
# (for the demo dataset; Debian: apt-get install npm). Chromium (/usr/bin/chromium) is optional:
# the HTML report tests render pages with it headless, and are skipped without it.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
# torch first, pinned (see pyproject.toml): the project's install then finds it satisfied.
if ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
  .venv/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
fi
stamp=.venv/.atlantis-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq npm) >/dev/null
fi
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || echo "warning: could not install chromium; report render tests will be skipped" >&2
fi
.venv/bin/atlantis data fetch-emoji >/dev/null
echo "setup done: .venv is ready"
