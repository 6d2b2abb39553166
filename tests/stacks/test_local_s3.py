"""The data, training and deployment pipelines on the ``local-s3`` stack against a real
S3 API (moto's server on loopback): the main job, started over HTTP through the trigger
service (``run.py --stack local-s3 trigger-server``, see conftest.py), then the bucket
read back: ZenML's artifacts, the content-addressed images, MLflow's files and the
model channel are there, and the edge runtime's own client pulls the production model
from the bucket, verifies it and runs it."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from zenml.client import Client

from edge_runtime.channel import ChannelClient
from edge_runtime.ed25519 import load_public_key
from edge_runtime.model import load_version
from edge_runtime.storage import S3Store
from tests.stacks.conftest import MODEL, SIGNING_SEED, S3World
from visionloop import constants

pytestmark = pytest.mark.s3


class World:
    """The bucket and the main job's summary."""

    def __init__(self, s3: S3World, run: dict[str, Any]) -> None:
        self.s3, self.summary = s3, run["summary"]
        self.bucket, self.server, self.tmp = s3.bucket, s3.server, s3.tmp
        self.keys, self.get = s3.keys, s3.get


@pytest.fixture(scope="module")
def world(s3_world: S3World, main_run: dict[str, Any]) -> World:
    return World(s3_world, main_run)


def test_the_three_pipelines_ran_on_the_local_s3_stack(world: World) -> None:
    s = world.summary
    runs = [s["data"]["run"], s["training"]["run"], s["deployment"]["run"]]
    assert [s[k]["status"] for k in ("data", "training", "deployment")] == ["completed"] * 3
    assert {Client().get_pipeline_run(r).stack.name for r in runs} == {"visionloop-local-s3"}
    assert s["deployment"]["stage"] == "production"
    assert s["deployment"]["channel"] == f"s3://{world.bucket}/channel"
    # the active stack of this session is still the local one: --stack is per command
    assert Client().active_stack_model.name == "visionloop-local"


def test_zenml_artifacts_and_images_are_in_the_bucket(world: World) -> None:
    run = Client().get_pipeline_run(world.summary["training"]["run"])
    onnx = run.steps["export_onnx"].outputs[constants.ONNX_MODEL][0]
    prefix = f"s3://{world.bucket}/zenml/"
    assert onnx.uri.startswith(prefix), onnx.uri
    stored = world.keys(onnx.uri[len(f"s3://{world.bucket}/") :] + "/")
    blob = onnx.load()  # read back through the S3 artifact store, from this process
    key = next(k for k in stored if k.endswith(blob.filename))
    assert hashlib.sha256(world.get(key)).hexdigest() == blob.sha256 == onnx.run_metadata["sha256"]
    data_run = Client().get_pipeline_run(world.summary["data"]["run"])
    dataset = data_run.steps["split_dataset"].outputs[constants.IMAGE_DATASET][0]
    assert dataset.uri.startswith(prefix)
    images = world.keys("zenml/visionloop/images/")
    assert len(images) == world.summary["data"]["images"] == 16
    manifest = dataset.load().manifest
    assert {Path(k).stem for k in images} == {r.sha256 for r in manifest.records}


def test_mlflow_files_are_in_the_bucket(world: World) -> None:
    run_id = world.summary["training"]["mlflow_run_id"]
    files = world.keys(f"mlflow/{constants.TRAINING_PIPELINE}/{run_id}/artifacts/")
    assert any(k.endswith("model/model.onnx") for k in files), files
    assert not (world.tmp / "mlruns").exists()  # nothing fell back to the working directory


def test_the_edge_runtime_pulls_the_production_model_from_the_bucket(world: World) -> None:
    from visionloop.deploy.signing import parse_private_key

    store = S3Store(f"s3://{world.bucket}/channel", world.server.endpoint_url)
    key_file = world.summary["deployment"]["public_key"]
    public = load_public_key(world.get(key_file[len(f"s3://{world.bucket}/") :]))
    assert public == parse_private_key(SIGNING_SEED, "test").public_raw
    device = ChannelClient(store, public)
    verified = device.fetch_stage(MODEL, "production", world.tmp / "device")
    assert verified is not None and verified.version == world.summary["deployment"]["model_version"]
    model = load_version(verified)  # loads in onnxruntime and passes the shipped self-test
    image = Image.open(io.BytesIO(world.get(world.keys("raw-images/squares/img_000")[0])))
    assert isinstance(model.predict(image.convert("RGB")), list)


def test_tuning_trials_are_separate_parallel_steps(world: World) -> None:
    """Tuning fans out: each trial is its own step with no edge to another trial, so an
    orchestrator that runs steps in parallel (Kubernetes, SageMaker) runs them side by side."""
    from pipelines.training_pipeline import training_pipeline

    data_run = Client().get_pipeline_run(world.summary["data"]["run"])
    dataset_id = str(data_run.steps["split_dataset"].outputs[constants.IMAGE_DATASET][0].id)
    trial = {"epochs": 1, "imgsz": 64, "batch": 8, "lr0": 0.01}
    pipeline = training_pipeline.copy()
    pipeline.prepare(dataset_artifact_id=dataset_id, trials=[trial] * 3, base_params=trial)
    invocations = pipeline.invocations
    trials = {f"tune_trial_{i}" for i in range(3)}
    assert trials <= set(invocations)
    for name in trials:
        assert not invocations[name].upstream_steps & trials
    assert trials <= invocations["select_params"].upstream_steps


def test_registering_again_is_idempotent_and_follows_the_environment(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml.enums import StackComponentType

    from stacks.bootstrap import StackError, ensure_stack

    monkeypatch.setenv("VISIONLOOP_S3_ENDPOINT", world.server.endpoint_url)
    monkeypatch.setenv("VISIONLOOP_S3_BUCKET", world.bucket)
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)

    def endpoint() -> str:
        store = Client().get_stack_component(StackComponentType.ARTIFACT_STORE, "visionloop-s3-artifacts")
        return str(store.configuration["client_kwargs"]["endpoint_url"])

    count = len(Client().list_stack_components(size=100).items)
    assert ensure_stack("local-s3", activate=False) == "visionloop-local-s3"
    assert ensure_stack("local-s3", activate=False) == "visionloop-local-s3"
    assert len(Client().list_stack_components(size=100).items) == count
    assert endpoint() == world.server.endpoint_url
    monkeypatch.setenv("VISIONLOOP_S3_ENDPOINT", "http://127.0.0.1:9")
    ensure_stack("local-s3", activate=False)
    assert endpoint() == "http://127.0.0.1:9"
    monkeypatch.setenv("VISIONLOOP_S3_ENDPOINT", world.server.endpoint_url)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # the secret exists: kept as it is
    ensure_stack("local-s3", activate=False)
    assert endpoint() == world.server.endpoint_url
    secret = Client().get_secret("visionloop-s3", allow_partial_name_match=False)
    assert set(secret.secret_values) == {"aws_access_key_id", "aws_secret_access_key"}
    monkeypatch.delenv("VISIONLOOP_S3_ENDPOINT")
    with pytest.raises(
        StackError, match=r"stacks/local-s3.yaml: .*endpoint_url needs \$\{VISIONLOOP_S3_ENDPOINT\}"
    ):
        ensure_stack("local-s3", activate=False)
    assert Client().active_stack_model.name == "visionloop-local"
