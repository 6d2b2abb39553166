"""The monitoring pipeline: the edge's prediction logs of a time window against the
statistics of the data set version the production model was trained on.

Its parameters name no model version, data set or fixed window: the first step resolves
them when the run executes, so the same pipeline can be handed to an orchestrator's
schedule (``python run.py --stack kubernetes monitor --schedule``)."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from steps.monitoring import (
    detect_drift,
    load_prediction_window,
    monitoring_target,
    reference_features,
    reference_prediction_features,
)
from visionloop import constants


@pipeline(name=constants.MONITORING_PIPELINE, enable_cache=True)
def monitoring_pipeline(
    model_name: str,
    logs: str,
    settings: dict[str, Any],
    since: str | None = None,
    until: str | None = None,
    s3_endpoint: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> None:
    """``since``/``until``: the window (default: ``settings["window_hours"]`` before
    the run); ``thresholds``: the serving ``conf`` and ``iou`` the edge uses."""
    model, dataset_id, dataset_version, model_id, window = monitoring_target(
        model_name, since, until, window_hours=settings["window_hours"]
    )
    reference = reference_features(dataset_id, max_images=settings["reference_images"])
    t = thresholds or {}
    predictions = reference_prediction_features(
        dataset_id,
        model_id,
        conf=t.get("conf", 0.25),
        iou=t.get("iou", 0.7),
        max_images=settings["reference_images"],
    )
    current, log_summary = load_prediction_window(logs, window, s3_endpoint=s3_endpoint)
    detect_drift(
        reference,
        predictions,
        current,
        log_summary,
        settings=settings,
        dataset_version_id=dataset_version,
        window=window,
        model=model,
    )
