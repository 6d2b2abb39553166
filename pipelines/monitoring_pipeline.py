"""The monitoring pipeline: the edge's prediction logs of a time window against the
statistics of the data set version the production model was trained on."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client

from steps.monitoring import (
    detect_drift,
    load_prediction_window,
    reference_features,
    reference_prediction_features,
)
from visionloop import constants


@pipeline(name=constants.MONITORING_PIPELINE, enable_cache=True)
def monitoring_pipeline(
    dataset_artifact_id: str,
    dataset_version_id: str,
    logs: str,
    since: str | None,
    until: str | None,
    settings: dict[str, Any],
    s3_endpoint: str | None = None,
    model_artifact_id: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> None:
    """``model_artifact_id``: the production model's ONNX artifact (its answers on the
    held-out images are the reference of the prediction features); ``thresholds``: the
    serving ``conf`` and ``iou`` the edge uses."""
    dataset = Client().get_artifact_version(dataset_artifact_id)
    model = Client().get_artifact_version(model_artifact_id) if model_artifact_id else None
    reference = reference_features(dataset, max_images=settings["reference_images"])
    t = thresholds or {}
    predictions = reference_prediction_features(
        dataset,
        model,
        conf=t.get("conf", 0.25),
        iou=t.get("iou", 0.7),
        max_images=settings["reference_images"],
    )
    current, log_summary = load_prediction_window(logs, since, until, s3_endpoint=s3_endpoint)
    detect_drift(
        reference,
        predictions,
        current,
        log_summary,
        settings=settings,
        dataset_version_id=dataset_version_id,
        window={"since": since, "until": until},
    )
