"""`python run.py monitor` on the session's fresh ZenML store: the prediction logs of a
darkened camera against the production model's data set version (metal-tags) are drift
on brightness, bad log lines are counted, and the reports have dashboard views."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from click.testing import CliRunner
from PIL import Image
from zenml import Model, link_artifact_to_model, log_metadata, save_artifact
from zenml.artifacts.utils import load_artifact_visualization
from zenml.client import Client
from zenml.io import fileio

from edge_runtime.detector import OnnxDetector
from edge_runtime.imagestats import image_stats
from edge_runtime.predlog import record
from pipelines.launch import run_data_pipeline
from tests.conftest import METAL_TAGS, REPO_ROOT
from visionloop.config import load_config
from visionloop.monitoring.streams import metal_tag_pools, stream

MODEL = "tags-monitor"


def log_lines(images: list[bytes], when: datetime, detector: OnnxDetector) -> list[str]:
    """The prediction log lines the edge runtime writes for these images, with what
    the production model answered."""
    lines = []
    for i, data in enumerate(images):
        with Image.open(io.BytesIO(data)) as image:
            stats = image_stats(image)
            found = detector.predict(image)
        doc = record(
            found,
            stats,
            25.0,
            time=(when + timedelta(seconds=i)).isoformat(),
            model=MODEL,
            version="1",
        )
        lines.append(json.dumps(doc))
    return lines


def production_model_on(
    dataset_artifact_id: str, dataset_version_id: str, onnx: Path, model: str = MODEL
) -> str:
    """A new production version of ``model`` trained on that data set version, with its
    ONNX model, as the deployment pipeline leaves it (the control plane's state; the model
    is the ABD checkpoint's export: no training needed here). Returns the version."""
    import materializers.model_blob_materializer  # noqa: F401 - registers ModelBlob's materializer
    from tests.deploy.channel_helpers import onnx_blob
    from visionloop import constants

    client = Client()
    try:
        client.get_model(model)
    except KeyError:
        client.create_model(name=model)
    version = client.create_model_version(model_name_or_id=model)
    name = str(version.name)
    link_artifact_to_model(
        client.get_artifact_version(dataset_artifact_id), model=Model(name=model, version=name)
    )
    blob = save_artifact(onnx_blob(onnx), name=constants.ONNX_MODEL)
    link_artifact_to_model(blob, model=Model(name=model, version=name))
    log_metadata(metadata={"dataset_version_id": dataset_version_id}, model_name=model, model_version=name)
    version.set_stage("production", force=True)
    return name


def test_monitor_flags_a_darkened_camera(
    zenml_stack, label_studio, abd_onnx, tmp_path: Path, monkeypatch
) -> None:
    import run

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    base = yaml.safe_load((REPO_ROOT / "configs" / "metal_tags.yaml").read_text())
    base["data"]["source"] = str(METAL_TAGS)
    base["model_name"] = MODEL
    base["monitor"] = {"logs": str(tmp_path / "logs"), "on_drift": "label"}
    base["label"] = {"url": label_studio.url, "raw_images": str(tmp_path / "raw"), "project": "monitor drift"}
    (tmp_path / "raw" / "feedback").mkdir(parents=True)
    for i, image in enumerate(sorted(METAL_TAGS.glob("*/*.jpg"))[:3]):  # what the edge sent back
        (tmp_path / "raw" / "feedback" / f"sent-{i}.jpg").write_bytes(image.read_bytes() + b"\0")
    config_path = tmp_path / "monitor.yaml"
    config_path.write_text(yaml.safe_dump(base))
    data = run_data_pipeline(load_config(config_path).data)
    production_model_on(data.artifact_id, data.dataset.version_id, abd_onnx)
    detector = OnnxDetector(abd_onnx, conf=0.25, iou=0.7)  # the serving thresholds (deploy.thresholds)

    _, held = metal_tag_pools(METAL_TAGS)
    now = datetime.now(UTC)
    lines = log_lines(stream(held, "darker", 40, 0), now - timedelta(hours=2), detector)
    lines += ["", "{truncated", json.dumps({"time": now.isoformat()})]
    (tmp_path / "logs" / "line-3").mkdir(parents=True)
    (tmp_path / "logs" / "line-3" / "predictions.jsonl").write_text("\n".join(lines) + "\n")

    result = CliRunner().invoke(run.cli, ["monitor", "--config", str(config_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["drift"] and "brightness" in summary["drifted_features"]
    assert summary["reference"] == data.dataset.version_id
    assert summary["current_images"] == 40
    assert summary["log"]["malformed"] == 2 and summary["log"]["empty"] == 1
    assert summary["action"] == "label"
    # drift started a labeling round: the edge's images are in Label Studio
    labeling = summary["labeling"]
    assert labeling["project"] == "monitor drift" and labeling["project_url"].startswith(label_studio.url)
    assert labeling["created_tasks"] == 3 and labeling["images"]["queued"] == 3

    run_model = Client().get_pipeline_run(summary["run"])
    for name, heading in (("drift_decision", "<h2>Monitoring: DRIFT</h2>"), ("drift_report", "brightness")):
        artifact = run_model.steps["detect_drift"].outputs[name][0]
        html = [i for i, v in enumerate(artifact.visualizations) if str(v.type.value) == "html"]
        assert html and fileio.exists(artifact.visualizations[html[0]].uri), f"{name} has no HTML view"
        # what the dashboard's visualize endpoint serves (zenml.zen_server: load_artifact_visualization)
        shown = load_artifact_visualization(artifact, index=html[0], zen_store=Client().zen_store)
        assert heading in str(shown.value), (name, str(shown.value)[:300])
    decision = run_model.steps["detect_drift"].outputs["drift_decision"][0].load()
    assert decision.drift and decision.log["malformed"] == 2
    # what the model answered is compared too, with its answers on the held-out images
    assert {"max_score", "boxes", "mean_box_area"} <= {f.feature for f in decision.features}

    # a second window with the camera fixed: no drift; the reference comes from the cache
    later = now + timedelta(hours=30)
    fixed = log_lines(stream(held, "none", 40, 5), later - timedelta(hours=1), detector)
    (tmp_path / "logs" / "line-3" / "predictions-2.jsonl").write_text("\n".join(fixed) + "\n")
    result = CliRunner().invoke(
        run.cli,
        [
            "monitor",
            "--config",
            str(config_path),
            "--since",
            (later - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S"),
            "--until",
            later.strftime("%Y-%m-%dT%H:%M:%S"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert not summary["drift"] and summary["current_images"] == 40 and summary["action"] == "none"
    second = Client().get_pipeline_run(summary["run"])
    assert second.steps["reference_features"].status.value == "cached"
    assert second.steps["reference_prediction_features"].status.value == "cached"


def test_a_scheduled_run_watches_what_is_in_production_when_it_runs(
    zenml_stack, abd_onnx, tmp_path: Path, monkeypatch
) -> None:
    """The parameters a schedule repeats name no model version and no window: each run
    resolves both when it executes, asks the trigger service for the follow-up of a drift,
    and takes the reference statistics of a data set version it has seen from the cache."""
    from pipelines.launch import monitoring_parameters
    from pipelines.monitoring_pipeline import monitoring_pipeline
    from tests.monitoring.helpers import TOKEN, finished, serve

    model = "tags-scheduled"
    service = serve(tmp_path)
    trigger = next(service)  # its configuration folder holds tags.yaml
    monkeypatch.setenv("VISIONLOOP_TRIGGER_TOKEN", TOKEN)
    base = yaml.safe_load((REPO_ROOT / "configs" / "metal_tags.yaml").read_text())
    base["data"]["source"] = str(METAL_TAGS)
    base["model_name"] = model
    base["monitor"] = {"logs": str(tmp_path / "logs"), "on_drift": "label", "trigger_url": trigger.url}
    config_path = tmp_path / "tags.yaml"
    config_path.write_text(yaml.safe_dump(base))
    config = load_config(config_path)
    data = run_data_pipeline(config.data)
    first = production_model_on(data.artifact_id, data.dataset.version_id, abd_onnx, model)

    params = monitoring_parameters(config, None, None, None, config_path.stem)
    assert params["model_name"] == model and params["since"] is None and params["until"] is None
    _, held = metal_tag_pools(METAL_TAGS)
    detector = OnnxDetector(abd_onnx, conf=0.25, iou=0.7)
    (tmp_path / "logs").mkdir()
    now = datetime.now(UTC)
    lines = log_lines(stream(held, "darker", 40, 1), now - timedelta(minutes=30), detector)
    lines += log_lines(stream(held, "none", 10, 2), now - timedelta(hours=30), detector)  # before the window
    (tmp_path / "logs" / "predictions.jsonl").write_text("\n".join(lines) + "\n")

    run = monitoring_pipeline(**params)
    assert run is not None
    run = run.get_hydrated_version()
    decision = run.steps["detect_drift"].outputs["drift_decision"][0].load()
    assert decision.model == f"{model}:{first}" and decision.reference == data.dataset.version_id
    assert decision.drift and "brightness" in decision.drifted_features
    assert decision.current_images == 40 and decision.log["outside_window"] == 10
    since, until = (datetime.fromisoformat(decision.window[k]) for k in ("since", "until"))
    assert now <= until <= datetime.now(UTC) and until - since == timedelta(hours=24)
    follow = decision.follow_up
    assert decision.action == "label" and follow is not None and follow.requested, follow
    assert finished(trigger.service, str(follow.run_id))["status"] == "succeeded"
    assert trigger.started == [("label", "tags.yaml")]

    # a new production version (same data set) and the trigger service down: the next
    # run of the same parameters watches the new version and records the failed request
    second = production_model_on(data.artifact_id, data.dataset.version_id, abd_onnx, model)
    next(service, None)  # stops the service
    run = monitoring_pipeline(**params)
    assert run is not None
    run = run.get_hydrated_version()
    decision = run.steps["detect_drift"].outputs["drift_decision"][0].load()
    assert decision.model == f"{model}:{second}" != f"{model}:{first}"
    assert decision.drift and decision.follow_up is not None and not decision.follow_up.requested
    assert decision.follow_up.error is not None and "could not reach" in decision.follow_up.error
    assert run.status.value == "completed" and trigger.started == [("label", "tags.yaml")]
    assert run.steps["reference_features"].status.value == "cached"  # the data set is the same
    assert run.steps["reference_prediction_features"].status.value == "completed"  # the model is not
