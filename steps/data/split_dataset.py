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
    mode: str | None = None,
) -> Annotated[
    ImageDataset,
    ArtifactConfig(name=constants.IMAGE_DATASET, artifact_type=ArtifactType.DATA),
]:
    """Keep the splits the source declares (``mode`` ``source``, the default when it
    declares any; missing ones carved from its train split) or assign train/val/test per
    capture group (``auto``: seeded, stratified by rarest class); unlabeled images get no
    split. The result is the data set version."""
    records = accepted.records
    try:
        plan = split.resolve_splits(records, split.SplitConfig(train, val, test, seed, mode))  # in place
    except split.SplitModeError as exc:
        raise split.SplitModeError(f"{accepted.source}: {exc}") from exc
    jobs = sorted({r.labeling_job for r in records if r.labeling_job})
    manifest = DatasetManifest(
        class_names=accepted.class_names,
        source=accepted.source,
        label_format=accepted.label_format,
        records=records,
        labeling_jobs=jobs,
        split_plan=plan,
    )
    dataset = ImageDataset(manifest, blob_store_at(accepted.blob_root))
    stats = dataset.stats()
    for line in plan.lines():
        logger.info("Splits: %s", line)
    logger.info(
        "Data set version %s: %d images %s, %d boxes in %d groups",
        dataset.short_id,
        stats["images"],
        stats["per_split"],
        stats["boxes"],
        stats["groups"],
    )
    log_metadata({"version_id": dataset.version_id, "per_split": stats["per_split"], "split_mode": plan.mode})
    return dataset
