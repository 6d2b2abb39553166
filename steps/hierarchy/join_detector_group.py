"""Step: a detector group's labelled images join the leaf data set (whole images labelled
with the group, their boxes kept), so the parent learns the group from them and the
bundle is measured on them end to end."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from materializers.classification_dataset_materializer import ClassificationDatasetMaterializer
from steps.hierarchy.cache_policy import DATA_CACHE
from visionloop import constants
from visionloop.data.dataset import ImageDataset
from visionloop.hierarchy import dataset as ds
from visionloop.hierarchy.spec import HierarchySpec

logger = get_logger(__name__)


@step(cache_policy=DATA_CACHE, output_materializers=ClassificationDatasetMaterializer)
def join_detector_group(
    leaf: ds.ClassificationDataset, detections: ImageDataset, spec: dict[str, Any], group: str
) -> Annotated[ds.ClassificationDataset, constants.LEAF_DATASET]:
    """``detections``: the group's detection data set version (the detection data
    pipeline's steps made it: import, QA, group-aware split); its splits are kept."""
    joined, duplicates = ds.with_detector_group(leaf, detections, HierarchySpec.model_validate(spec), group)
    added = sum(r.label == group for r in joined.records)
    stats = joined.stats()
    logger.info(
        "Leaf data set %s: %d images of detector group %s joined from detection data set %s "
        "(%d left out as duplicates), splits %s",
        joined.short_id,
        added,
        group,
        detections.short_id,
        duplicates,
        stats["per_split"],
    )
    log_metadata(
        {
            "version_id": joined.version_id,
            "group": group,
            "detection_dataset_version_id": detections.version_id,
            "group_images": added,
            "duplicates": duplicates,
            "per_split": stats["per_split"],
        }
    )
    return joined
