"""Step: the data set one node trains on, drawn from the leaf data set."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from materializers.classification_dataset_materializer import ClassificationDatasetMaterializer
from steps.hierarchy.cache_policy import DATA_CACHE
from visionloop import constants
from visionloop.hierarchy import dataset as ds
from visionloop.hierarchy.spec import HierarchySpec

logger = get_logger(__name__)


@step(cache_policy=DATA_CACHE, output_materializers=ClassificationDatasetMaterializer)
def node_dataset(
    leaf: ds.ClassificationDataset, spec: dict[str, Any], node: str
) -> Annotated[ds.ClassificationDataset, constants.NODE_DATASET]:
    """``parent``: every group's images labelled by group, train balanced per
    ``parent.balance``; a group: its classes' images; ``flat``: every image. Its
    version id changes only when the node's own records change."""
    dataset = ds.node_dataset(leaf, HierarchySpec.model_validate(spec), node)
    stats = dataset.stats()
    logger.info("Node %s: data set %s, splits %s", node, dataset.short_id, stats["per_split"])
    log_metadata({"node": node, "version_id": dataset.version_id, "per_split": stats["per_split"]})
    return dataset
