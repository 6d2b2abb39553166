"""The monitoring pipeline: the edge's prediction logs of a time window against the
statistics of the data set version the production model was trained on."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client

from steps.monitoring import detect_drift, load_prediction_window, reference_features
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
) -> None:
    dataset = Client().get_artifact_version(dataset_artifact_id)
    reference = reference_features(dataset, max_images=settings["reference_images"])
    current, log_summary = load_prediction_window(logs, since, until, s3_endpoint=s3_endpoint)
    detect_drift(
        reference,
        current,
        log_summary,
        settings=settings,
        dataset_version_id=dataset_version_id,
        window={"since": since, "until": until},
    )
