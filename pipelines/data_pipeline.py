"""The data pipeline: raw images and labels in, a checked, versioned, split data set out."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from steps.data import check_images, ingest_images, split_dataset
from visionloop import constants


@pipeline(name=constants.DATA_PIPELINE, enable_cache=True)
def data_pipeline(
    source: str,
    source_fingerprint: str,
    label_format: str = "auto",
    class_names: list[str] | None = None,
    group_pattern: str | None = None,
    group_field: str | None = None,
    s3_endpoint: str | None = None,
    qa_settings: dict[str, Any] | None = None,
    split_settings: dict[str, Any] | None = None,
) -> None:
    listing = ingest_images(
        source=source,
        source_fingerprint=source_fingerprint,
        label_format=label_format,
        class_names=class_names,
        group_pattern=group_pattern,
        group_field=group_field,
        s3_endpoint=s3_endpoint,
    )
    accepted, _report = check_images(listing, qa_settings=qa_settings, s3_endpoint=s3_endpoint)
    split_dataset(accepted, **(split_settings or {}))
