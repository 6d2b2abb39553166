"""Step: split the accepted images into a versioned, group-aware data set."""

from __future__ import annotations

from typing import Annotated

from zenml import ArtifactConfig, log_metadata, step
from zenml.config.cache_policy import CachePolicy
from zenml.enums import ArtifactType
from zenml.logger import get_logger

from materializers.artifact_blob_store import blob_store_at
from materializers.image_dataset_materializer import ImageDatasetMaterializer
from visionloop import constants
from visionloop.data import split
from visionloop.data.dataset import DatasetManifest, ImageDataset
from visionloop.data.types import AcceptedImages

logger = get_logger(__name__)


@step(
    cache_policy=CachePolicy(file_dependencies=["visionloop/data/split.py", "visionloop/data/dataset.py"]),
    output_materializers=ImageDatasetMaterializer,
)
def split_dataset(
    accepted: AcceptedImages,
    train: float = 0.7,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
) -> Annotated[
    ImageDataset,
    ArtifactConfig(name=constants.IMAGE_DATASET, artifact_type=ArtifactType.DATA),
]:
    """Assign train/val/test per capture group (seeded, stratified by rarest class);
    unlabeled images get no split. The result is the data set version."""
    records = split.set_splits(accepted.records, split.SplitConfig(train, val, test, seed))  # in place
    jobs = sorted({r.labeling_job for r in records if r.labeling_job})
    manifest = DatasetManifest(
        class_names=accepted.class_names,
        source=accepted.source,
        label_format=accepted.label_format,
        records=records,
        labeling_jobs=jobs,
    )
    dataset = ImageDataset(manifest, blob_store_at(accepted.blob_root))
    stats = dataset.stats()
    logger.info(
        "Data set version %s: %d images %s, %d boxes in %d groups",
        dataset.short_id,
        stats["images"],
        stats["per_split"],
        stats["boxes"],
        stats["groups"],
    )
    log_metadata({"version_id": dataset.version_id, "per_split": stats["per_split"]})
    return dataset
