"""Headless Chromium for the browser tests: Debian's chromium and chromium-driver
(``scripts/chromium.sh`` installs them), started offline; the ``browser`` fixture is in
``tests/stacks/conftest.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CHROMIUM = Path(os.environ.get("VISIONLOOP_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("VISIONLOOP_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = REPO_ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]
WAIT_S = 90


def require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(
            f"headless Chromium is missing ({', '.join(missing)}): scripts/chromium.sh installs "
            "Debian's chromium and chromium-driver with apt-get (as root); make test runs it"
        )
