"""Step: a folder of class folders in, the leaf classification data set out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from materializers.artifact_blob_store import default_blob_store
from materializers.classification_dataset_materializer import ClassificationDatasetMaterializer
from steps.hierarchy.cache_policy import DATA_CACHE
from visionloop import constants
from visionloop.hierarchy.dataset import ClassificationDataset, IngestReport, ingest
from visionloop.hierarchy.spec import HierarchySpec

logger = get_logger(__name__)


@step(
    cache_policy=DATA_CACHE, output_materializers={constants.LEAF_DATASET: ClassificationDatasetMaterializer}
)
def ingest_classes(
    spec: dict[str, Any], source_fingerprint: str
) -> tuple[
    Annotated[ClassificationDataset, constants.LEAF_DATASET],
    Annotated[IngestReport, constants.HIERARCHY_INGEST_REPORT],
]:
    """Every image of a declared leaf class, checked (decodes, big enough, no
    conflicting duplicates), stored content-addressed and given a split.
    ``source_fingerprint`` (the listing's hash) makes the step re-run exactly when a
    file was added, removed or changed."""
    hierarchy = HierarchySpec.model_validate(spec)
    dataset, report = ingest(Path(hierarchy.data.source), hierarchy, default_blob_store())
    stats = dataset.stats()
    logger.info(
        "Leaf data set %s: %d images accepted of %d (%d rejected, %d files ignored), splits %s",
        dataset.short_id,
        report.accepted,
        report.total,
        len(report.rejected),
        len(report.ignored),
        stats["per_split"],
    )
    log_metadata(
        {
            "version_id": dataset.version_id,
            "accepted": report.accepted,
            "rejected": len(report.rejected),
            "ignored": len(report.ignored),
            "per_split": stats["per_split"],
            "source_fingerprint": source_fingerprint,
        }
    )
    return dataset, report
