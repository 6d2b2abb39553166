"""Steps of the monitoring pipeline.

What is monitored is resolved when the run executes, not when it is started: the
production model version, its data set version and the time window (default: the last
``window_hours`` before the run). A scheduled run therefore always watches the model in
production at that moment. The reference steps are keyed by the *values* of the ids
they get (not by the ids of the small artifacts carrying them), so their statistics are
computed once per data set version (and model) and come from the cache afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pandas as pd
from zenml import load_artifact, log_metadata, step
from zenml.client import Client
from zenml.config.cache_policy import CachePolicy
from zenml.logger import get_logger
from zenml.types import HTMLString

from edge_runtime.storage import open_store
from materializers.drift_decision_materializer import DriftDecisionMaterializer
from steps.secrets import SecretFieldMissing, env_or_secret
from visionloop import constants
from visionloop.config import MonitorSettings
from visionloop.data.dataset import ImageDataset
from visionloop.monitoring.drift import DriftDecision, decide
from visionloop.monitoring.follow_up import TOKEN_ENV, request_follow_up
from visionloop.monitoring.logs import read_window
from visionloop.monitoring.reference import PREDICTION_FEATURES, reference_predictions, reference_table
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)

# keyed by the id values and the code that computes the statistics
REFERENCE_CACHE = CachePolicy(
    include_artifact_ids=False,
    file_dependencies=["visionloop/monitoring/reference.py", "edge_runtime/imagestats.py"],
)
PREDICTION_CACHE = CachePolicy(
    include_artifact_ids=False,
    file_dependencies=[
        "visionloop/monitoring/reference.py",
        "edge_runtime/detector.py",
        "edge_runtime/preprocess.py",
    ],
)


class MonitorError(RuntimeError):
    pass


def production_target(model_name: str) -> dict[str, str]:
    """The production version of ``model_name`` and the artifacts monitoring needs."""
    from zenml.enums import ModelStages

    try:
        production = Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError as exc:
        raise MonitorError(
            f"model {model_name} has no production version to monitor: deploy one first"
        ) from exc
    dataset = production.get_artifact(constants.IMAGE_DATASET)
    if dataset is None:
        raise MonitorError(
            f"{model_name} version {production.name} has no linked {constants.IMAGE_DATASET} artifact"
        )
    onnx = production.get_artifact(constants.ONNX_MODEL)
    return {
        "model": f"{model_name}:{production.name}",
        "dataset_artifact_id": str(dataset.id),
        "dataset_version_id": str(production.run_metadata.get("dataset_version_id", "")),
        "model_artifact_id": str(onnx.id) if onnx is not None else "",
    }


def resolve_window(since: str | None, until: str | None, window_hours: float) -> dict[str, str]:
    end = datetime.fromisoformat(until) if until else datetime.now(UTC)
    start = datetime.fromisoformat(since) if since else end - timedelta(hours=window_hours)
    return {"since": start.isoformat(), "until": end.isoformat()}


@step(enable_cache=False)
def monitoring_target(
    model_name: str, since: str | None = None, until: str | None = None, window_hours: float = 24.0
) -> tuple[
    Annotated[str, "monitored_model"],
    Annotated[str, "reference_dataset_id"],
    Annotated[str, "reference_dataset_version"],
    Annotated[str, "reference_model_id"],
    Annotated[dict[str, str], "window"],
]:
    """The production model version of ``model_name`` now, the ids of its data set and
    ONNX artifacts, and the window: ``[since, until)``, by default the ``window_hours``
    before now."""
    target = production_target(model_name)
    window = resolve_window(since, until, window_hours)
    log_metadata(metadata={**target, **window})
    logger.info("Monitoring %s over %s .. %s", target["model"], window["since"], window["until"])
    return (
        target["model"],
        target["dataset_artifact_id"],
        target["dataset_version_id"],
        target["model_artifact_id"],
        window,
    )


@step(cache_policy=REFERENCE_CACHE)
def reference_features(
    dataset_artifact_id: str, max_images: int = 2000
) -> Annotated[pd.DataFrame, "reference_features"]:
    """Per-image statistics of the data set version (cached: once per version)."""
    dataset: ImageDataset = load_artifact(dataset_artifact_id)
    return reference_table(dataset, max_images)


@step(cache_policy=PREDICTION_CACHE)
def reference_prediction_features(
    dataset_artifact_id: str,
    model_artifact_id: str,
    conf: float = 0.25,
    iou: float = 0.7,
    max_images: int = 2000,
) -> Annotated[pd.DataFrame, "reference_predictions"]:
    """The production model's prediction features (best score, box count, mean box
    area) on the data set version's held-out images, predicted by the edge runtime's own
    ONNX code at the serving thresholds (cached: once per data set and model). Without
    a model file, an empty table: prediction features are then not compared."""
    if not model_artifact_id:
        logger.warning("no production ONNX model: prediction statistics are not compared")
        return pd.DataFrame(columns=list(PREDICTION_FEATURES))
    from edge_runtime.detector import OnnxDetector

    dataset: ImageDataset = load_artifact(dataset_artifact_id)
    model: ModelBlob = load_artifact(model_artifact_id)
    detector = OnnxDetector(model.data, model.class_names, conf=conf, iou=iou)
    return reference_predictions(dataset, detector.predict, max_images)


@step(enable_cache=False)
def load_prediction_window(
    logs: str, window: dict[str, str], s3_endpoint: str | None = None
) -> tuple[Annotated[pd.DataFrame, "current_features"], Annotated[dict[str, Any], "log_summary"]]:
    """The prediction log lines of the window; empty and malformed lines are counted."""
    lines = read_window(
        open_store(logs, s3_endpoint),
        "",
        datetime.fromisoformat(window["since"]),
        datetime.fromisoformat(window["until"]),
    )
    summary = lines.summary()
    if lines.malformed or lines.empty:
        logger.warning(
            "Prediction logs: %d malformed and %d empty lines skipped (first: %s)",
            lines.malformed,
            lines.empty,
            lines.examples[:3],
        )
    return pd.DataFrame(lines.rows), summary


@step(enable_cache=False, output_materializers={constants.DRIFT_DECISION: DriftDecisionMaterializer})
def detect_drift(
    reference: pd.DataFrame,
    predictions: pd.DataFrame,
    current: pd.DataFrame,
    log_summary: dict[str, Any],
    settings: dict[str, Any],
    dataset_version_id: str,
    window: dict[str, str],
    model: str = "",
) -> tuple[Annotated[DriftDecision, constants.DRIFT_DECISION], Annotated[HTMLString, constants.DRIFT_REPORT]]:
    """Evidently's comparison of the window with the reference, and the decision. With
    ``monitor.trigger_url``, the follow-up job of a drift is asked of the trigger
    service here, and its answer is part of the decision."""
    config = MonitorSettings(**settings)
    decision, html = decide(reference, current, config, dataset_version_id, window, log_summary, predictions)
    decision.model = model or None
    decision.action = config.on_drift if decision.drift else "none"
    if decision.action != "none" and config.trigger_url:
        decision.follow_up = request_follow_up(
            decision.action,
            config.trigger_url,
            trigger_token(config.trigger_token_secret),
            config.trigger_config or "",
        )
        log = logger.info if decision.follow_up.requested else logger.error
        log("Follow-up: %s", decision.follow_up.describe())
    log_metadata(
        metadata={
            "drift": decision.drift,
            "drifted_features": decision.drifted_features,
            "current_images": decision.current_images,
            "malformed_lines": int(log_summary.get("malformed", 0)),
            "action": decision.action,
            "follow_up": decision.follow_up.describe() if decision.follow_up else "",
        }
    )
    logger.info("Monitoring: %s; action %s", "; ".join(decision.reasons), decision.action)
    return decision, HTMLString(html or "<p>Too few images in the window for a comparison.</p>")


def trigger_token(secret_name: str) -> str | None:
    """``$VISIONLOOP_TRIGGER_TOKEN``, else the ``token`` of the ZenML secret ``secret_name``
    (none: the follow-up is recorded as not started, with the reason)."""
    try:
        return env_or_secret(TOKEN_ENV, secret_name, "token")
    except SecretFieldMissing:
        logger.error("the ZenML secret %r has no 'token' value", secret_name)
        return None
