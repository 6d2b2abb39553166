"""The training pipeline end to end on a small generated data set, offline, on the
session's fresh ZenML store, asserting on what it produced."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from zenml.client import Client

from tests.conftest import REPO_ROOT
from tests.factories import detection_set
from visionloop import constants

MODEL_NAME = "squares-detector"
PARITY_MAP50 = 0.02  # the tolerance documented in README (ExportSettings.parity_max_map50_diff)


def write_config(tmp: Path) -> Path:
    data = detection_set(tmp / "squares", n=48, size=128, seed=3)
    config = {
        "name": "squares",
        "model_name": MODEL_NAME,
        "data": {"source": str(data), "format": "yolo"},
        "tune": {
            "trials": 2,
            "epochs": 1,
            "subset": 0.5,
            # no imgsz list: the trials and the full training take train.imgsz as written
            "space": {"lr0": [0.002, 0.004], "augment": [1.0]},
        },
        "train": {"epochs": 6, "imgsz": 128, "batch": 8},
        "export": {"calibration_images": 8},
    }
    path = tmp / "squares.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train_offline(config: Path, guard_log: Path) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "tests/offline_guard.py",
            str(guard_log),
            "run.py",
            "train",
            "--config",
            str(config),
            "--json",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(zenml_stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("training")
    config = write_config(tmp)
    guard = tmp / "network-attempts.log"
    first = train_offline(config, guard)
    second = train_offline(config, guard)
    return first, second, guard


def test_no_attempt_to_reach_the_network(trained):
    _, _, guard = trained
    attempts = guard.read_text() if guard.exists() else ""
    assert attempts == "", f"network access attempted:\n{attempts}"


def test_model_version_links_the_data_set_version(trained):
    first, _, _ = trained
    t = first["training"]
    assert t["status"] == "completed" and t["model"] == MODEL_NAME
    version = Client().get_model_version(MODEL_NAME, t["model_version"])
    meta = version.run_metadata
    assert meta["dataset_version_id"] == first["data"]["dataset_version_id"] == t["dataset_version_id"]
    linked = {a.name for a in Client().list_artifact_versions(model_version_id=version.id, size=100).items}
    assert {
        constants.IMAGE_DATASET,
        constants.MODEL_WEIGHTS,
        constants.ONNX_MODEL,
        constants.EVALUATION_REPORT,
        constants.TUNING_RESULT,
    } <= linked
    assert meta["code_commit"]


def test_onnx_artifact_sha256_matches_its_bytes(trained):
    first, _, _ = trained
    run = Client().get_pipeline_run(first["training"]["run"])
    artifact = run.steps["export_onnx"].outputs[constants.ONNX_MODEL][0]
    blob = artifact.load()
    digest = hashlib.sha256(blob.data).hexdigest()
    assert digest == artifact.run_metadata["sha256"] == blob.sha256
    assert (
        digest
        == Client()
        .get_model_version(MODEL_NAME, first["training"]["model_version"])
        .run_metadata["onnx_sha256"]
    )
    assert blob.data[:2] == b"\x08\x08" or len(blob.data) > 100_000  # an ONNX protobuf, not a stub
    assert blob.class_names == ["square"] and blob.imgsz == 128 and blob.opset == 17


def test_metrics_are_numbers_in_the_unit_interval(trained):
    first, _, _ = trained
    t = first["training"]
    figures = [
        t["test"]["map50"],
        t["test"]["map50_95"],
        t["test"]["precision"],
        t["test"]["recall"],
        t["onnx"]["map50"],
        t["onnx"]["map50_95"],
        t["int8"]["map50"],
    ]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in figures), figures
    assert t["test"]["images"] > 0
    assert t["test"]["map50"] > 0.1  # it learned something: squares are easy


def test_onnx_parity_within_tolerance(trained):
    first, _, _ = trained
    parity = first["training"]["parity"]
    assert abs(parity["map50_diff"]) <= PARITY_MAP50
    assert parity["reference_boxes"] > 0, "the model found nothing at score >= 0.25: parity is vacuous"
    assert parity["boxes_matched_share"] >= 0.9
    assert first["training"]["parity_ok"] is True


def test_mlflow_has_the_run_and_a_registered_version(trained):
    import mlflow

    first, _, _ = trained
    t = first["training"]
    tracker = Client().active_stack.experiment_tracker
    client = mlflow.MlflowClient(tracking_uri=tracker.get_tracking_uri())
    run = client.get_run(t["mlflow_run_id"])
    # MLflow holds the evaluation's exact figure, the one the ZenML model version records;
    # the summary shows it rounded to 4 places
    zenml_version = Client().get_model_version(MODEL_NAME, t["model_version"])
    recorded = zenml_version.run_metadata["test_map50"]
    assert run.data.metrics["test_map50"] == recorded
    assert t["test"]["map50"] == round(recorded, 4)
    assert run.data.params["dataset_version_id"] == t["dataset_version_id"]
    version = client.get_model_version(MODEL_NAME, t["mlflow_model_version"])
    assert version.run_id == t["mlflow_run_id"]
    # training curves: one point per epoch, and the experiment opens in the model-training view
    curve = client.get_metric_history(t["mlflow_run_id"], "epoch_val_map50")
    assert [m.step for m in curve] == list(range(1, len(curve) + 1)) and len(curve) == 6
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    assert version.tags["zenml_model_version"] == t["model_version"]


def test_the_written_imgsz_reaches_the_trials_and_the_full_training(trained):
    first, _, _ = trained
    t = first["training"]
    run = Client().get_pipeline_run(t["run"])
    tuning = run.steps["select_params"].outputs[constants.TUNING_RESULT][0].load()
    assert [trial.params.imgsz for trial in tuning.trials] == [128, 128]
    assert tuning.best_params.imgsz == 128 and not [o for o in tuning.overrides if o.field == "imgsz"]
    # what the full training ran at: the ONNX export's fixed input and the model metadata
    version = Client().get_model_version(MODEL_NAME, t["model_version"])
    assert version.run_metadata["imgsz"] == 128
    assert version.run_metadata["train_params"]["imgsz"] == 128
    assert t["imgsz"] == 128


def test_rerun_with_nothing_changed_does_not_retrain(trained):
    """Nothing changed: the version the first run registered is reused; no new ZenML or
    MLflow model version, no new training run."""
    import mlflow

    first, second, _ = trained
    assert second["data"]["dataset_version_id"] == first["data"]["dataset_version_id"]
    assert second["training"]["reused"] and not first["training"]["reused"]
    for key in ("model_version", "mlflow_run_id", "mlflow_model_version", "run", "test"):
        assert second["training"][key] == first["training"][key]
    assert [v.number for v in Client().list_model_versions(model=MODEL_NAME)] == [
        int(first["training"]["model_version"])
    ]
    tracker = Client().active_stack.experiment_tracker
    client = mlflow.MlflowClient(tracking_uri=tracker.get_tracking_uri())
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1
