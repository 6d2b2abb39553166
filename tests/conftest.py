"""Test session set-up: a fresh ZenML store and caches in a temporary folder.

The environment is set at import time, before any test module imports zenml, so the
whole session talks to its own SQLite store and local artifact store and never to the
user's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SESSION_DIR = Path(tempfile.mkdtemp(prefix="visionloop-tests-"))
os.environ["ZENML_CONFIG_PATH"] = str(SESSION_DIR / "zenml")
os.environ["VISIONLOOP_CACHE_DIR"] = str(SESSION_DIR / "cache")
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "WARN"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["YOLO_OFFLINE"] = "1"

pytest_plugins = ["tests.moto_server"]

REPO_ROOT = Path(__file__).resolve().parent.parent
METAL_TAGS = REPO_ROOT / "data" / "metal-tags"


@pytest.fixture(scope="session")
def zenml_stack() -> Iterator[str]:
    """The visionloop local stack registered and active on the session's fresh store."""
    from stacks.bootstrap import ensure_stack

    yield ensure_stack("local")


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return SESSION_DIR
