"""The labeling pipeline: the raw images the model is unsure about go to Label Studio
with pre-labels; reviewed annotations come back through data QA into a new data set
version."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client

from steps.data import check_images, ingest_images
from steps.labeling import gather_images, merge_labeled_images, pull_annotations, sync_label_studio
from visionloop import constants


@pipeline(name=constants.LABELING_PIPELINE, enable_cache=False)
def labeling_pipeline(
    raw_images: str,
    base_dataset_artifact_id: str,
    model_name: str,
    class_names: list[str],
    project_title: str,
    label: dict[str, Any],
    prelabel_conf: float = 0.25,
    group_pattern: str | None = None,
    qa_settings: dict[str, Any] | None = None,
    split_settings: dict[str, Any] | None = None,
) -> None:
    """``base_dataset_artifact_id``: the data set version the new labels are added to
    (the production model's); ``label``: the ``label`` section of the configuration."""
    base = Client().get_artifact_version(base_dataset_artifact_id)
    endpoint = label.get("s3_endpoint")
    queue = gather_images(
        raw_images,
        base,
        model_name,
        prelabel_conf=prelabel_conf,
        scan_conf=label["scan_conf"],
        s3_endpoint=endpoint,
    )
    sync = sync_label_studio(queue, class_names, label, project_title)
    labeling_round, labels_fingerprint = pull_annotations(queue, sync, label)
    listing = ingest_images(
        source=raw_images,
        source_fingerprint=labels_fingerprint,
        label_format="auto",  # the export is Label Studio JSON; with none yet, every image is unlabeled
        class_names=class_names,
        group_pattern=group_pattern,
        s3_endpoint=endpoint,
    )
    accepted, _report = check_images(listing, qa_settings=qa_settings, s3_endpoint=endpoint)
    merge_labeled_images(base, accepted, labeling_round, split_settings=split_settings)
