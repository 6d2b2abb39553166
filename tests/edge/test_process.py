"""The edge runtime as the program a device runs: installed in a fresh virtual
environment that has only numpy, onnxruntime and Pillow, and killed with SIGKILL in the
middle of model swaps."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from edge_runtime.channel import verify_folder
from tests.conftest import REPO_ROOT
from tests.deploy.channel_helpers import key
from tests.edge.helpers import MODEL, AgentProcess, Channel, image_bytes, public_key_file
from visionloop.deploy.channel import Release

EDGE_PACKAGES = ("numpy", "numpy.libs", "onnxruntime", "PIL", "pillow.libs")
HEAVY = ("zenml", "torch", "ultralytics", "visionloop", "cv2", "boto3")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.defpath
    return env


def fresh_venv(folder: Path) -> Path:
    """A virtual environment (no system site-packages, no pip) in which only the edge
    runtime and numpy, onnxruntime and Pillow (linked from this environment's
    site-packages, nothing downloaded) are importable. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
            env=clean_env(),
        ).stdout.strip()
    )
    packages = folder / "edge-packages"
    packages.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for name in EDGE_PACKAGES:
        if (ours / name).exists():
            (packages / name).symlink_to(ours / name)
    shutil.copytree(
        REPO_ROOT / "edge_runtime", packages / "edge_runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    (site / "edge.pth").write_text(f"{packages}\n")
    return python


def test_runs_from_a_fresh_venv_without_the_training_stack(
    channel: Channel, rel: Release, tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "venv")
    workdir = tmp_path / "device"
    workdir.mkdir()
    for module in HEAVY:
        proc = subprocess.run(
            [str(python), "-c", f"import {module}"],
            cwd=workdir,
            env=clean_env(),
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, f"{module} is importable"
    check = "import edge_runtime.__main__, numpy, onnxruntime, PIL, sys; print(edge_runtime.__file__)"
    proc = subprocess.run(
        [str(python), "-c", check], cwd=workdir, env=clean_env(), capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith(str(tmp_path / "venv")), proc.stdout
    channel.publish(rel, "1")
    agent = AgentProcess(
        str(python),
        [
            "--channel",
            str(channel.root),
            "--model",
            MODEL,
            "--stage",
            "production",
            "--public-key",
            str(public_key_file(tmp_path)),
            "--state-dir",
            str(workdir / "state"),
            "--poll",
            "0.2",
        ],
        cwd=workdir,
        env=clean_env(),
    )
    try:
        agent.wait_serving("1")
        status, doc = agent.get("POST", "/v1/predict", image_bytes(1))
        assert status == 200 and doc["version"] == "1" and doc["detections"], doc
        assert all(len(d["box"]) == 4 and d["class_name"] for d in doc["detections"])
        assert agent.get("GET", "/v1/model")[1]["classes"] == rel.fields["classes"]
    finally:
        assert agent.stop() == 0, agent.log()


PHASES = ("fetching version", "loaded, self-test passed", "serving version", "removed")


def test_kill_9_during_swaps(channel: Channel, rel: Release, tmp_path: Path) -> None:
    """Kill the agent right after it announces each phase of a swap (with a random delay
    of 0-20 ms); every restart must serve a verified version at once, from disk."""
    channel.publish(rel, "1")
    state = tmp_path / "state"
    args = [
        "--channel",
        str(channel.root),
        "--model",
        MODEL,
        "--public-key",
        str(public_key_file(tmp_path)),
        "--state-dir",
        str(state),
        "--poll",
        "0.1",
        "--keep",
        "2",
        "--threads",
        "1",
    ]
    env = {**clean_env(), "PYTHONPATH": str(REPO_ROOT)}
    rng = random.Random(5)
    agent = AgentProcess(sys.executable, args, REPO_ROOT, env)
    agent.wait_serving("1")
    served: list[str] = []
    for i, phase in enumerate(PHASES * 2):
        version = str(i + 2)
        start = len(agent.lines)
        channel.publish(rel, version)
        agent.wait_for_line(phase, start)
        time.sleep(rng.uniform(0, 0.02))
        agent.kill9()
        # what the state folder says now must be complete and verified
        current = json.loads((state / MODEL / "production" / "state.json").read_text())["current"]
        verify_folder(state / MODEL / "production" / "versions" / current, key(1).public_raw, MODEL, current)
        agent = AgentProcess(sys.executable, args, REPO_ROOT, env)
        status, health = agent.get("GET", "/healthz")  # before the first poll can have finished
        assert status == 200 and health["version"] in (str(i + 1), version), health
        served.append(health["version"])
        assert agent.get("POST", "/v1/predict", image_bytes(i))[0] == 200
        agent.wait_serving(version)
    assert agent.stop() == 0, agent.log()
    versions = sorted(p.name for p in (state / MODEL / "production" / "versions").iterdir())
    assert versions == sorted([str(len(PHASES) * 2), str(len(PHASES) * 2 + 1)]), versions
    assert len(set(served)) > 1, f"the kills never landed between two versions: {served}"


def test_runtime_modules_import_no_heavy_framework() -> None:
    modules = ", ".join(
        f"edge_runtime.{m}"
        for m in ("__main__", "agent", "model", "runtime", "server", "spool", "predlog", "shadow", "watch")
    )
    code = f"import sys, {modules}; bad = set({HEAVY!r}) & set(sys.modules); assert not bad, bad"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
