"""run.py as a user runs it: a subprocess, human output, then one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


def run_cli(*args: str) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last), proc.stdout


def test_data_command_prints_the_version_and_a_json_summary(zenml_stack):
    summary, out = run_cli("data", "--json")
    assert summary["dataset_version_id"] in out and "quarantined" in out
    assert summary["qa"]["total"] == summary["qa"]["accepted"] + summary["qa"]["quarantined"] == 199
    assert set(summary["per_split"]) == {"train", "val", "test", "unlabeled"}


def test_stack_command_shows_the_local_stack(zenml_stack):
    info, _ = run_cli("stack", "--json")
    assert info["stack"] == "visionloop-local"
    assert {c["flavor"] for c in info["components"].values()} == {"local", "mlflow"}
    again, _ = run_cli("stack", "register", "local", "--json")  # idempotent, no prompt
    assert again["registered"] == "visionloop-local"


def test_a_missing_source_is_a_clear_error(zenml_stack, tmp_path):
    proc = subprocess.run(
        [sys.executable, "run.py", "data", "--source", str(tmp_path / "nope")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "is not a folder" in proc.stderr
