"""Test session set-up: a fresh ZenML store and caches in a temporary folder.

The environment is set at import time, before any test module imports zenml, so the
whole session talks to its own SQLite store and local artifact store and never to the
user's.
"""

from __future__ import annotations

import os
import shutil
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

pytest_plugins = ["tests.moto_server", "tests.label_studio_server"]

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


@pytest.fixture(scope="session")
def ultralytics_ready() -> None:
    from visionloop.training.offline import prepare_ultralytics

    prepare_ultralytics()


ABD_ONNX_IMGSZ = 320


@pytest.fixture(scope="session")
def abd_onnx(tmp_path_factory: pytest.TempPathFactory, ultralytics_ready: None) -> Path:
    """The ABD YOLOv8n checkpoint (COCO classes) exported to a fixed 320x320 ONNX
    (copied first: the exporter writes next to the weights)."""
    from ultralytics import YOLO

    from visionloop.training.offline import abd_checkpoint

    folder = tmp_path_factory.mktemp("abd-onnx")
    weights = folder / "abd.pt"
    shutil.copyfile(abd_checkpoint(), weights)
    out = YOLO(str(weights)).export(
        format="onnx", imgsz=ABD_ONNX_IMGSZ, opset=17, simplify=False, dynamic=False
    )
    path = Path(out)
    assert path.is_file()
    return path
