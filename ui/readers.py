"""What the status page reads: ZenML (model versions, their artifacts, pipeline runs),
the MLflow mirror (through the control plane) and the model channel. Nothing here
writes: no stage change, no pointer, no secret, no key file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from zenml.client import Client
from zenml.logger import get_logger

from edge_runtime.channel import pointer_key
from edge_runtime.detector import OnnxDetector
from edge_runtime.storage import StorageError, open_store
from steps.deployment import control_plane
from ui.gallery import Predicted, Truth
from visionloop import constants
from visionloop.config import VisionloopConfig
from visionloop.deploy.signing import SigningKeyError

logger = get_logger(__name__)

STAGES = (control_plane.STAGING, control_plane.PRODUCTION)
RUNS_SHOWN = 50


class NotFound(LookupError):
    """What a page asked for does not exist; the message says what and where."""


@dataclass(frozen=True)
class Overview:
    """The models page: every version (oldest first) with its history, the channel and
    what its stage pointers name (``verified``: checked against the signing key)."""

    model: str
    versions: list[dict[str, Any]]
    channel: str | None
    pointers: dict[str, str | None]
    verified: bool
    channel_error: str | None = None


def channel_of(config: VisionloopConfig, model: str) -> str | None:
    """Where the model was published (as the deployment recorded it), else the
    configured channel, else the active stack's; None when none can be named."""
    from pipelines.launch import resolve_channel

    try:
        return control_plane.recorded_channel(model) or resolve_channel(config)
    except Exception as exc:  # noqa: BLE001 - no channel is something to show, not a crash
        logger.info("No channel for %s: %s", model, exc)
        return None


def _raw_pointers(channel: str, model: str, s3_endpoint: str | None) -> dict[str, str | None]:
    store = open_store(channel, s3_endpoint)
    out: dict[str, str | None] = {}
    for stage in STAGES:
        data = store.get(pointer_key(model, stage), 64 * 1024)
        out[stage] = str(json.loads(data).get("version")) if data else None
    return out


def overview(config: VisionloopConfig) -> Overview:
    """``control_plane.status`` with every version's full stage history. Pointers are
    verified when the signing key is at hand (as ``run.py models`` does), else read as
    they are and marked unverified."""
    model = config.registered_model_name
    channel = channel_of(config, model)
    publisher = None
    if channel is not None:
        try:
            key = control_plane.signing_key(config.deploy.signing_secret)
            publisher = control_plane.publisher(channel, key, config.deploy.s3_endpoint)
        except SigningKeyError:
            publisher = None
    error = None
    try:
        info = control_plane.status(model, publisher)
    except StorageError as exc:  # the channel cannot be read: show the versions, say why
        info, publisher, error = control_plane.status(model, None), None, str(exc)
    by_name = {str(v.name): v for v in control_plane.all_versions(model)}
    for row in info["versions"]:
        mv = by_name.get(row["version"])
        row["history"] = control_plane.history(mv) if mv is not None else []
        row["mlflow_version"] = control_plane.mlflow_version(model, mv) if mv is not None else None
    pointers: dict[str, str | None] = dict(info.get("pointers") or {})
    if publisher is None and channel is not None and error is None:
        try:
            pointers = _raw_pointers(channel, model, config.deploy.s3_endpoint)
        except (StorageError, ValueError) as exc:
            error = str(exc)
    return Overview(model, info["versions"], channel, pointers, publisher is not None, error)


def model_version(model: str, version: str) -> Any:
    try:
        return control_plane.model_version(model, version)
    except control_plane.PromotionError as exc:
        raise NotFound(str(exc)) from exc


def history(mv: Any) -> list[dict[str, Any]]:
    """A version's stage changes, oldest first: stage, at, by, why (the control plane's record)."""
    return control_plane.history(mv)


def artifact(mv: Any, name: str) -> Any:
    """The artifact ``name`` linked to a model version (a response), or NotFound."""
    found = mv.get_artifact(name)
    if found is None:
        raise NotFound(f"{mv.model.name} version {mv.name} has no {name!r} artifact")
    return found


def evaluation_report(mv: Any) -> Any:
    """The version's ``EvaluationReport`` (visionloop/training/types.py)."""
    return artifact(mv, constants.EVALUATION_REPORT).load()


def report_html(mv: Any) -> str:
    """The HTML the evaluation report's materializer wrote as its visualization."""
    from zenml.artifacts.utils import load_artifact_visualization

    value = load_artifact_visualization(artifact(mv, constants.EVALUATION_REPORT), index=0).value
    return value.decode() if isinstance(value, bytes) else str(value)


def detector(mv: Any, conf: float, iou: float) -> OnnxDetector:
    """The version's ONNX model (``onnx_model``) in the edge runtime's own detector,
    at the serving thresholds."""
    blob = artifact(mv, constants.ONNX_MODEL).load()
    return OnnxDetector(blob.data, class_names=list(blob.class_names), conf=conf, iou=iou)


def predictor(det: OnnxDetector) -> Any:
    def predict(data: bytes) -> list[Predicted]:
        return [Predicted(d.class_id, d.score, d.box) for d in det.predict(data)]

    return predict


def test_samples(mv: Any) -> tuple[list[str], list[tuple[str, bytes, list[Truth]]]]:
    """(class names, [(source file name, image bytes, ground truth xyxy pixels)]) of the
    labelled test split of the version's data set (``image_dataset``)."""
    dataset = artifact(mv, constants.IMAGE_DATASET).load()
    samples = [
        (r.path, dataset.read_bytes(r), [Truth(b.class_id, (b.x1, b.y1, b.x2, b.y2)) for b in r.boxes])
        for r in dataset.split("test")
        if r.labeled
    ]
    return list(dataset.class_names), samples


def production_version(model: str) -> Any | None:
    return control_plane.version_in_stage(model, control_plane.PRODUCTION)


def _runs(pipeline: str, size: int) -> list[Any]:
    try:
        return list(
            Client()
            .list_pipeline_runs(pipeline=pipeline, status="completed", sort_by="desc:created", size=size)
            .items
        )
    except KeyError:
        return []


def _output(run: Any, step: str, name: str) -> Any | None:
    step_run = run.steps.get(step)
    if step_run is None or not step_run.outputs.get(name):
        return None
    return step_run.outputs[name][0].load()


@dataclass(frozen=True)
class LabelingView:
    run_name: str
    created: str
    labeling_round: Any
    queue: Any | None


def labeling(model: str) -> LabelingView | None:
    """The latest completed labeling run's round (and its queue) for ``model``, None
    without one (among the last ``RUNS_SHOWN`` labeling runs)."""
    for run in _runs(constants.LABELING_PIPELINE, RUNS_SHOWN):
        found = _output(run, "pull_annotations", constants.LABELING_ROUND)
        if found is not None and found.model_name == model:
            queue = _output(run, "gather_images", constants.LABEL_QUEUE)
            return LabelingView(str(run.name), f"{run.created:%Y-%m-%d %H:%M}", found, queue)
    return None


def monitoring(model: str) -> list[tuple[str, str, Any]]:
    """(run name, created, DriftDecision) of the monitoring runs, newest first (at
    most ``RUNS_SHOWN``), those of other models left out."""
    out = []
    for run in _runs(constants.MONITORING_PIPELINE, RUNS_SHOWN):
        decision = _output(run, "detect_drift", constants.DRIFT_DECISION)
        if decision is None:
            continue
        if decision.model and not str(decision.model).startswith(f"{model}:"):
            continue
        out.append((str(run.name), f"{run.created:%Y-%m-%d %H:%M}", decision))
    return out


def devices(channel: str | None, model: str, s3_endpoint: str | None) -> list[dict[str, Any]]:
    """The heartbeats under ``devices/<model>/`` in the channel (none until devices
    report), each as its JSON with the key it was read from."""
    if channel is None:
        return []
    store = open_store(channel, s3_endpoint)
    out = []
    try:
        keys = [k for k in store.list(f"devices/{model}/") if k.endswith(".json")]
    except (StorageError, FileNotFoundError):
        return []
    for key in sorted(keys):
        try:
            data = store.get(key, 256 * 1024)
            doc = json.loads(data) if data else None
        except (StorageError, ValueError) as exc:
            doc = {"error": str(exc)}
        if isinstance(doc, dict):
            out.append({"key": key, **doc})
    return out
