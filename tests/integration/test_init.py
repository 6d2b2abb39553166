"""A new user's own data, end to end: ``run.py init`` on a YOLO-layout set with its own
train/val/test split writes a configuration, and the main job runs it unedited
(``python run.py --config FILE``): the data set keeps the source's splits, the model is
trained, gated, published, and an edge runtime serves it. The model's test split is
exactly the source's test split."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from zenml.client import Client

from edge_runtime.channel import ChannelClient
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.storage import LocalStore
from tests.conftest import METAL_TAGS, REPO_ROOT
from tests.factories import split_detection_set
from visionloop.config import load_config
from visionloop.data.dataset import ImageDataset
from visionloop.deploy.signing import parse_private_key

SIGNING_SEED = "5d" * 32
COUNTS = {"train": 30, "val": 8, "test": 10}


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "run.py", *args, "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout


@pytest.fixture(scope="module")
def onboarded(zenml_stack: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import os

    tmp = tmp_path_factory.mktemp("init")
    source = split_detection_set(tmp / "parts", COUNTS, size=(160, 160), seed=21)
    config = tmp / "configs" / "parts.yaml"
    # a training budget a test can afford; everything else is derived
    written, init_out = cli("init", str(source), "--output", str(config), "--budget", "0.5")
    env = {**os.environ, "VISIONLOOP_SIGNING_KEY": SIGNING_SEED}
    main, main_out = cli("--config", str(config), env=env)
    return {
        "source": source,
        "config": config,
        "init": written,
        "init_out": init_out,
        "main": main,
        "main_out": main_out,
        "tmp": tmp,
    }


def test_init_writes_a_config_that_loads_and_says_why(onboarded: dict[str, Any]) -> None:
    config_path: Path = onboarded["config"]
    text = config_path.read_text()
    raw = yaml.safe_load(text)
    assert raw["data"]["split"]["mode"] == "source"
    assert raw["train"]["imgsz"] == 160 and raw["tune"]["space"]["imgsz"] == [160]
    assert "# median longer image side 160 px" in text
    config = load_config(config_path)
    assert Path(config.data.source) == onboarded["source"].resolve()
    assert onboarded["init"]["profile"]["declared_splits"] == COUNTS
    assert "python run.py --config" in onboarded["init_out"]
    # refuses to overwrite without --force
    proc = subprocess.run(
        [sys.executable, "run.py", "init", str(onboarded["source"]), "--output", str(config_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert config_path.read_text() == text


def test_the_data_set_keeps_the_source_splits(onboarded: dict[str, Any]) -> None:
    data = onboarded["main"]["data"]
    assert data["per_split"] == COUNTS
    assert data["splits"]["mode"] == "source" and data["splits"]["declared"] == COUNTS
    assert data["splits"]["straddling_groups"] == data["splits"]["identical_images"] == 0
    assert "split mode  source" in onboarded["main_out"]


def test_the_model_is_tested_on_exactly_the_source_test_split(onboarded: dict[str, Any]) -> None:
    training = onboarded["main"]["training"]
    source_test = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (onboarded["source"] / "images" / "test").glob("*.jpg")
    }
    version = Client().get_model_version(training["model"], training["model_version"])
    dataset_artifact = version.get_artifact("image_dataset")
    assert dataset_artifact is not None
    dataset: ImageDataset = dataset_artifact.load()
    assert dataset.version_id == training["dataset_version_id"]
    assert {r.sha256 for r in dataset.split("test")} == source_test
    assert training["test"]["images"] == len(source_test)
    assert training["imgsz"] == 160  # the derived imgsz reached the full training


def test_the_model_is_gated_published_and_served(onboarded: dict[str, Any]) -> None:
    deployment = onboarded["main"]["deployment"]
    assert deployment["stage"] == "production", (
        deployment["gate"]["reasons"],
        deployment["staging"],
        deployment["reasons"],
    )
    public = parse_private_key(SIGNING_SEED, "test").public_raw
    runtime = EdgeRuntime(
        RuntimeConfig(
            model=deployment["model"], state_dir=onboarded["tmp"] / "edge", poll_s=3600, device_id="init-test"
        ),
        ChannelClient(LocalStore(Path(deployment["channel"])), public),
        feedback_store=None,
    )
    runtime.start(background=False)
    try:
        runtime.agent.check_once()
        assert runtime.current is not None and runtime.current.version_id == deployment["model_version"]
        image = sorted((onboarded["source"] / "images" / "test").glob("*.jpg"))[0]
        answer = runtime.predict(image.read_bytes(), source=image.name)
        assert answer["model"] == deployment["model"] and answer["version"] == deployment["model_version"]
        assert isinstance(answer["detections"], list)
    finally:
        runtime.stop()


def test_a_rerun_with_nothing_changed_leaves_the_registry_and_the_channel_as_they_were(
    onboarded: dict[str, Any],
) -> None:
    import os

    import mlflow

    deployment = onboarded["main"]["deployment"]
    channel = Path(deployment["channel"])

    def channel_files() -> dict[str, str]:
        return {
            str(p.relative_to(channel)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(channel.rglob("*"))
            if p.is_file()
        }

    def registry() -> tuple[list[tuple[int, str]], int]:
        versions = Client().list_model_versions(model=deployment["model"])
        tracker = Client().active_stack.experiment_tracker
        assert tracker is not None
        mlflow_client = mlflow.MlflowClient(tracking_uri=tracker.get_tracking_uri())
        mirrored = mlflow_client.search_model_versions(f"name='{deployment['model']}'")
        return [(v.number, str(getattr(v.stage, "value", v.stage))) for v in versions], len(mirrored)

    before = channel_files(), registry()
    env = {**os.environ, "VISIONLOOP_SIGNING_KEY": SIGNING_SEED}
    again, out = cli("--config", str(onboarded["config"]), env=env)
    assert again.get("unchanged") and again["deployment"] is None
    assert again["training"]["reused"] and again["training"]["model_version"] == deployment["model_version"]
    assert "UNCHANGED" in out
    assert (channel_files(), registry()) == before


def test_init_on_the_bundled_set_finds_its_capture_groups_and_asks_for_names(tmp_path: Path) -> None:
    """Ground Truth labels carry class ids only: init says how to name them, then derives
    what configs/metal_tags.yaml states by hand (480 px, the crops' group pattern)."""
    target = tmp_path / "tags.yaml"
    base = [sys.executable, "run.py", "init", str(METAL_TAGS), "--output", str(target)]
    refused = subprocess.run(base, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--class-names" in refused.stderr and not target.exists()
    done = subprocess.run(
        [*base, "--class-names", "scratch"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    config = load_config(target)
    hand = load_config(REPO_ROOT / "configs" / "metal_tags.yaml")
    assert config.data.group_pattern == hand.data.group_pattern
    assert config.train.imgsz == hand.train.imgsz == 480
    assert config.data.class_names == ["scratch"] and config.data.format == "ground-truth"
