"""What the stack tests share: example values for the cloud stacks' variables (never a
real account), and running ``run.py`` as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

CLOUD_ENV = {
    "VISIONLOOP_K8S_CONTEXT": "arn:aws:eks:eu-west-1:123456789012:cluster/visionloop",
    "VISIONLOOP_BUCKET": "my-visionloop-bucket",
    "VISIONLOOP_ECR_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
    "VISIONLOOP_SAGEMAKER_ROLE": "arn:aws:iam::123456789012:role/visionloop-sagemaker",
    "VISIONLOOP_SCHEDULER_ROLE": "arn:aws:iam::123456789012:role/visionloop-scheduler",
    "VISIONLOOP_CODEBUILD_PROJECT": "visionloop-images",
    "VISIONLOOP_S3_ENDPOINT": "http://127.0.0.1:9000",
    "AWS_ACCESS_KEY_ID": "example-key-id",
    "AWS_SECRET_ACCESS_KEY": "example-secret",
}


def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
) -> dict[str, Any]:
    """``python run.py ARGS --json`` in a child process with the session's ZenML store;
    returns the last line's JSON summary (and fails with the output otherwise)."""
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run.py"), *args],
        cwd=cwd or REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, (
        f"run.py {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session, with what it started (TERM, then KILL)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
