"""The README's first hour, run as written: the ```` ```bash first-hour ```` blocks of its
"The first hour" section are parsed from README.md and run in order in a shell, so the
README and what works cannot drift apart.

Two things differ from a user's first hour, both outside the commands: ``make run``
trains on a smaller budget (``$VISIONLOOP_CONFIG`` names a copy of the metal-tags
configuration with 2 epochs at 320 px, no tuning and looser ONNX parity for so young a
model: the 17 minutes of the real run are in BENCHMARKS.md), and the Label Studio the README starts is the test session's (the
``run.py label`` line gets that server's URL and token in place of the README's). The
loop is followed from the outside: main job, the device serving it, predictions on the
bundled field images, and a labeling round that brings the images the device sent back
into Label Studio with the production model's pre-labels."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import METAL_TAGS, REPO_ROOT
from tests.label_studio_server import LabelStudioServer
from tests.labeling.helpers import studio

README_URL = "http://127.0.0.1:8081"
README_TOKEN = "change-this-token"
DEVICE = "http://127.0.0.1:8080"


def first_hour_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## The first hour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^( *)```bash first-hour\n(.*?)^\1```", section, flags=re.M | re.S)
    return [textwrap.dedent(body) for _, body in blocks]


def small_config(tmp: Path) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "configs" / "metal_tags.yaml").read_text())
    raw["data"]["source"] = str(METAL_TAGS)
    raw["train"].update(epochs=2, imgsz=320)
    raw["tune"] = {"trials": 0}
    # a 2-epoch model's ONNX and PyTorch boxes agree less than a trained one's
    raw["export"] = {"int8": False, "parity_min_match_share": 0.5, "parity_max_map50_diff": 0.2}
    raw["deploy"]["gate"] = {"min_map50": 0.0, "min_class_recall": 0.0}
    raw["deploy"]["staging"] = {"latency_images": 5, "max_latency_p95_ms": 5000, "max_model_mb": 20}
    path = tmp / "metal_tags_small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def shell(script: str, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def health() -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{DEVICE}/healthz", timeout=5) as response:
            return dict(json.loads(response.read()))
    except OSError:
        return None


@pytest.fixture(scope="module")
def first_hour(
    zenml_stack: str, label_studio: LabelStudioServer, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    blocks = first_hour_blocks()
    assert len(blocks) == 4, blocks  # main job, serve, predict, label
    make_run, serve, predict, label = blocks
    assert make_run.strip() == "make run" and "run.py serve" in serve and "run.py label" in label
    tmp = tmp_path_factory.mktemp("first-hour")
    env = {
        **os.environ,
        "VISIONLOOP_CONFIG": str(small_config(tmp)),
        "VISIONLOOP_CACHE_DIR": str(tmp / "cache"),
    }
    out: dict[str, Any] = {"main": shell(make_run, env, 1500)}
    assert "is in PRODUCTION" in out["main"], out["main"][-3000:]
    device = subprocess.Popen(
        ["bash", "-c", serve],
        cwd=REPO_ROOT,
        env=env,
        stdout=(tmp / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while (h := health()) is None or h["status"] != "ok":
            assert device.poll() is None and time.monotonic() < deadline, (tmp / "serve.log").read_text()[
                -3000:
            ]
            time.sleep(1)
        out["predictions"] = [
            json.loads(line) for line in shell(predict, env, 300).splitlines() if line.strip()
        ]
        sent = [p for p in out["predictions"] if p["feedback"]]
        # the device uploads what it sent back to the raw image store (within a few seconds)
        deadline = time.monotonic() + 120
        while (spool := (health() or {}).get("spool", {})).get("items", 1) and time.monotonic() < deadline:
            time.sleep(1)
        out["health"] = health()
        out["sent"] = sent
        commands = label.replace("\\\n", " ").splitlines()  # one line per command
        kept = [
            c for c in commands if "scripts/labelstudio.sh start" not in c
        ]  # the session's server instead
        assert len(kept) == len(commands) - 1
        command = (
            "\n".join(kept).replace(README_URL, label_studio.url).replace(README_TOKEN, label_studio.token)
        )
        assert label_studio.url in command and label_studio.token in command
        out["label"] = shell(command + " --json", env, 900)
        out["spool"] = spool
    finally:
        os.killpg(device.pid, signal.SIGTERM)
        device.wait(timeout=60)
    out["serve_log"] = (tmp / "serve.log").read_text()
    return out


def test_the_main_job_publishes_a_model_and_prints_the_device_command(first_hour: Any) -> None:
    main = first_hour["main"]
    assert "is in PRODUCTION" in main and "python -m edge_runtime serve" in main and "--feedback" in main
    assert "python -m edge_runtime serve" in first_hour["serve_log"]


def test_the_device_answers_every_field_image(first_hour: Any) -> None:
    field = sorted(METAL_TAGS.glob("*/*.jpg_*"))
    predictions = first_hour["predictions"]
    assert len(predictions) == len(field) == 10
    assert all(p["model"] == "metal-tags-detector" and p["version"] == "1" for p in predictions)
    counters = first_hour["health"]["feedback"]
    assert counters["uncertain"] + counters["empty_sampled"] == len(first_hour["sent"])
    assert first_hour["health"]["predictions"] == 10


def test_what_the_device_sent_back_reaches_label_studio_with_prelabels(
    first_hour: Any, label_studio: LabelStudioServer
) -> None:
    summary = json.loads(first_hour["label"].strip().splitlines()[-1])
    sent = first_hour["sent"]
    assert sent, "the 2-epoch model should be unsure about some of the 10 field images"
    assert summary["created_tasks"] == len(sent)
    tasks = studio(label_studio).tasks(summary["project_id"])
    assert {t["data"]["edge_device_id"] for t in tasks} == {os.uname().nodename}
    uncertain = [p for p in sent if p["feedback"]["reason"].startswith("uncertain")]
    with_boxes = [t for t in tasks if t["predictions"] and t["predictions"][0]["result"]]
    assert len(with_boxes) >= len(uncertain)  # an uncertain image has a box above the pre-label threshold
    assert all(
        t["predictions"][0]["model_version"] == "metal-tags-detector:1" for t in tasks if t["predictions"]
    )
