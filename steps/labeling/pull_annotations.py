"""Step: read the annotations back from Label Studio, review them and export the
accepted labels into the raw image store."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from edge_runtime.storage import open_store
from materializers.labeling_round_materializer import LabelingRoundMaterializer
from steps.labeling.studio_client import studio
from visionloop import constants
from visionloop.config import LabelSettings
from visionloop.data.sources import fingerprint, open_source
from visionloop.labeling.review import ReviewPolicy
from visionloop.labeling.rounds import export_bytes, export_digest, export_key, review_project
from visionloop.labeling.types import ImageState, LabelingRound, LabelQueue, SyncResult, TaskDecision

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers={constants.LABELING_ROUND: LabelingRoundMaterializer})
def pull_annotations(
    queue: LabelQueue, sync: SyncResult, settings: dict[str, Any]
) -> tuple[
    Annotated[LabelingRound, constants.LABELING_ROUND],
    Annotated[str, constants.LABELS_FINGERPRINT],
]:
    """Review every task of the project (``label.review``), send rejected annotations
    back to the queue, and write the accepted ones to
    ``<raw store>/labels/label-studio-project-<id>.json``. Returns the round (every raw
    image with its state) and the store's fingerprint after the export, which makes
    the ingestion that follows re-read the store."""
    label = LabelSettings(**settings)
    policy = ReviewPolicy(label.review, frozenset(label.reviewers), label.agreement_iou)
    decisions, export, requeued = review_project(studio(label), sync.project_id, policy)
    with_task = {d.sha256 for d in decisions}
    for item in queue.items:  # held back by label.max_tasks: sent in a later round
        if item.image.sha256 not in with_task:
            decisions.append(
                TaskDecision(
                    task_id=0,
                    sha256=item.image.sha256,
                    path=item.image.path,
                    state=ImageState.QUEUED,
                    reason="not sent yet (label.max_tasks per round)",
                )
            )
    key = export_key(sync.project_id)
    store = open_store(queue.raw_images, label.s3_endpoint)
    store.put(key, export_bytes(export))
    labeling_job = f"label-studio:{sync.project_url.rsplit('/data', 1)[0]}"
    result = LabelingRound(
        model_name=queue.model_name or "",
        raw_images=queue.raw_images,
        studio_url=sync.url,
        project_id=sync.project_id,
        project_title=sync.project_title,
        project_url=sync.project_url,
        review_mode=label.review,
        created_tasks=sync.created,
        already_there=sync.already_there,
        decisions=decisions,
        quarantined=queue.quarantined,
        labeled_before=queue.labeled_before,
        found=queue.found,
        requeued=requeued,
        export_path=f"{queue.raw_images.rstrip('/')}/{key}",
        export_fingerprint=export_digest(export),
        labeling_job=labeling_job,
    )
    counts = result.counts()
    logger.info(
        "Labeling round %s: %s; %d annotations sent back to the queue; export %s (%d tasks)",
        sync.project_url,
        counts,
        len(requeued),
        result.export_path,
        len(export),
    )
    log_metadata({"counts": counts, "requeued": len(requeued), "export_path": result.export_path})
    return result, fingerprint(open_source(queue.raw_images, label.s3_endpoint))
