#!/usr/bin/env bash
# The test command: lint, type-check, then the test suite (slow cases excluded: they
# run in `make bench`). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/chromium.sh  # headless Chromium for the dashboard browser test (apt-get when missing)
VENV="${VISIONLOOP_VENV:-.venv}"
export PATH="$PWD/$VENV/bin:$PATH"
# The Label Studio server (its own venv) installs while lint and type checks run; the
# tests that need it start it (tests/label_studio_server.py), waiting for this install.
mkdir -p test-artifacts
scripts/labelstudio.sh > test-artifacts/labelstudio-install.log 2>&1 &
echo "== ruff"
ruff check .
ruff format --check . || { echo "run: .venv/bin/ruff format ."; exit 1; }
echo "== mypy"
mypy visionloop steps pipelines materializers stacks edge_runtime ui run.py
echo "== pytest"
python -m pytest "$@"
