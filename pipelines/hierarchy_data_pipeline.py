"""The hierarchy's data pipeline: class folders in, the leaf data set and one data set
per node (parent, each child, the flat comparison) out."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from steps.hierarchy import ingest_classes, node_dataset
from visionloop import constants


@pipeline(name=constants.HIERARCHY_DATA_PIPELINE, enable_cache=True)
def hierarchy_data_pipeline(spec: dict[str, Any], source_fingerprint: str, nodes: list[str]) -> None:
    """``spec``: the hierarchy declaration (``HierarchySpec`` as a dict);
    ``source_fingerprint``: the hash of the source's listing (new or changed files
    re-run ingestion); ``nodes``: the nodes to draw a data set for (step ``node_data_<node>``)."""
    leaf, _report = ingest_classes(spec, source_fingerprint)
    for node in nodes:
        node_dataset(leaf, spec, node=node, id=f"node_data_{node}")
