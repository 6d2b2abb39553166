"""The key a re-run is recognised by: the same inputs and code give the same key; a
parameter or a line of the training code changes it; a commit alone does not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import pipelines.launch as launch
from tests.conftest import REPO_ROOT


def test_the_training_key_follows_inputs_and_code_not_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("steps/training", "visionloop/training", "visionloop/data", "edge_runtime", "pipelines"):
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(launch, "REPO_ROOT", tmp_path)
    params = {"dataset_artifact_id": "a1", "base_params": {"imgsz": 224}, "code_commit": "abc"}
    key = launch.training_key(params)
    assert launch.training_key({**params, "code_commit": "def-dirty"}) == key
    assert launch.training_key({**params, "base_params": {"imgsz": 256}}) != key
    yolo = tmp_path / "visionloop" / "training" / "yolo.py"
    yolo.write_text(yolo.read_text() + "\n# an edit\n")
    assert launch.training_key(params) != key
