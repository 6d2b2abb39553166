#!/usr/bin/env bash
# Install the Label Studio server into its own virtual environment (it pins Django and
# other packages that must not meet visionloop's), idempotently. The tests that need a
# Label Studio start it from here on loopback; `python run.py label` does not need it
# (it talks to any Label Studio by URL). Usage: scripts/labelstudio.sh [start PORT DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VISIONLOOP_LS_VENV:-.venv-labelstudio}"
VERSION="${VISIONLOOP_LS_VERSION:-1.23.2}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$VENV/.installed-label-studio-$VERSION"
# one install at a time (the test command warms it up in the background)
exec 9>"${TMPDIR:-/tmp}/visionloop-labelstudio-install.lock"
flock 9
if [ ! -f "$stamp" ]; then
  echo "labelstudio: installing label-studio==$VERSION into $VENV (about 2 minutes the first time)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "label-studio==$VERSION" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  rm -f "$VENV"/.installed-label-studio-*
  touch "$stamp"
fi
flock -u 9
if [ "${1:-}" = "start" ]; then
  port="${2:?port}"
  data="${3:?data dir}"
  export LABEL_STUDIO_BASE_DATA_DIR="$data"
  export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
  export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="${LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT:-/}"
  # offline: no version check against PyPI, no analytics
  export LABEL_STUDIO_LATEST_VERSION_CHECK=false LABEL_STUDIO_COLLECT_ANALYTICS=false
  exec "$VENV/bin/label-studio" start --no-browser --host 127.0.0.1 -p "$port"
fi
