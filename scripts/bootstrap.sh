#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment. Idempotent: it re-installs only
# when pyproject.toml changed since the last install. Used by `make run`, `make test`
# and `make bench`; safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VISIONLOOP_VENV:-.venv}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "bootstrap: installing visionloop and its dependencies into $VENV (a few minutes the first time)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "bootstrap: done"
