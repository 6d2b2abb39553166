"""Step: the accepted labels, checked by data QA, into a new data set version."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType
from zenml.logger import get_logger

from materializers.artifact_blob_store import blob_store_at
from materializers.image_dataset_materializer import ImageDatasetMaterializer
from visionloop import constants
from visionloop.data.dataset import ImageDataset
from visionloop.data.split import SplitConfig
from visionloop.data.types import AcceptedImages
from visionloop.labeling.merge import MergeSummary, merge_labels
from visionloop.labeling.types import LabelingRound

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers={constants.IMAGE_DATASET: ImageDatasetMaterializer})
def merge_labeled_images(
    base: ImageDataset,
    accepted: AcceptedImages,
    labeling_round: LabelingRound,
    split_settings: dict[str, Any] | None = None,
) -> tuple[
    Annotated[ImageDataset, ArtifactConfig(name=constants.IMAGE_DATASET, artifact_type=ArtifactType.DATA)],
    Annotated[MergeSummary, constants.LABEL_MERGE],
]:
    """``base`` (the production model's data set version) plus the images that data
    QA accepted with a label from the round's export. The base keeps its splits; with
    no new label the version id is the base's."""
    if accepted.blob_root != base.blobs.uri:
        for r in accepted.records:  # another artifact store: copy the new images over
            if r.labeled:
                base.blobs.put(r.sha256, r.ext, blob_store_at(accepted.blob_root).get(r.sha256, r.ext))
    manifest, summary = merge_labels(
        base.manifest,
        base.version_id,
        accepted.records,
        SplitConfig(**(split_settings or {})),
        accepted.source,
    )
    dataset = ImageDataset(manifest, base.blobs)
    accepted_shas = {d.sha256 for d in labeling_round.accepted}
    in_dataset = {r.sha256 for r in manifest.records if r.labeled}
    missing = sorted(d.path for d in labeling_round.accepted if d.sha256 not in in_dataset)
    logger.info(
        "Data set version %s from %s: %d labelled images added (%s); %d accepted in Label Studio%s",
        dataset.short_id,
        base.short_id,
        summary.added,
        summary.per_split,
        len(accepted_shas),
        f"; not in the data set (see the quarantine report): {missing[:10]}" if missing else "",
    )
    log_metadata(
        {
            "base_version": base.version_id,
            "dataset_version_id": dataset.version_id,
            "added": summary.added,
            "added_per_split": summary.per_split,
            "accepted_not_in_dataset": len(missing),
        }
    )
    return dataset, summary
