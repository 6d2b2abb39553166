"""The hierarchy's data pipeline: class folders in, the leaf data set and one data set
per classifier node (parent, each classifier child, the flat comparison) out; each
detector child's detection source goes through the detection data pipeline's steps
(import, QA, group-aware split) and its images join the leaf data set."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from steps.data import check_images, ingest_images, split_dataset
from steps.hierarchy import ingest_classes, join_detector_group, node_dataset
from visionloop import constants


@pipeline(name=constants.HIERARCHY_DATA_PIPELINE, enable_cache=True)
def hierarchy_data_pipeline(
    spec: dict[str, Any],
    source_fingerprint: str,
    nodes: list[str],
    detectors: dict[str, dict[str, Any]] | None = None,
) -> None:
    """``spec``: the hierarchy declaration (``HierarchySpec`` as a dict);
    ``source_fingerprint``: the hash of the source's listing (new or changed files
    re-run ingestion); ``nodes``: the classifier nodes to draw a data set for (step
    ``node_data_<node>``); ``detectors``: per detector group, the detection data
    pipeline's parameters (``pipelines.launch.data_parameters``): its data set is step
    ``detect_data_<group>``, the leaf set with its images ``leaf_with_<group>``."""
    leaf, _report = ingest_classes(spec, source_fingerprint)
    for group, p in (detectors or {}).items():
        listing = ingest_images(
            source=p["source"],
            source_fingerprint=p["source_fingerprint"],
            label_format=p["label_format"],
            class_names=p["class_names"],
            group_pattern=p["group_pattern"],
            group_field=p["group_field"],
            s3_endpoint=p["s3_endpoint"],
            id=f"ingest_{group}",
        )
        accepted, _quarantine = check_images(
            listing, qa_settings=p["qa_settings"], s3_endpoint=p["s3_endpoint"], id=f"check_{group}"
        )
        detections = split_dataset(accepted, **p["split_settings"], id=f"detect_data_{group}")
        leaf = join_detector_group(leaf, detections, spec, group=group, id=f"leaf_with_{group}")
    for node in nodes:
        node_dataset(leaf, spec, node=node, id=f"node_data_{node}")
