"""Step: the labeling queue into a Label Studio project."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from steps.labeling.studio_client import studio
from visionloop import constants
from visionloop.config import LabelSettings
from visionloop.labeling.rounds import sync_queue
from visionloop.labeling.types import LabelQueue, SyncResult

logger = get_logger(__name__)


@step(enable_cache=False)
def sync_label_studio(
    queue: LabelQueue, class_names: list[str], settings: dict[str, Any], project_title: str
) -> Annotated[SyncResult, constants.LABEL_SYNC]:
    """Create or update the project (its labeling configuration from the class names),
    connect the raw image store as its storage and add a task, with pre-annotations,
    for every queued image that has none. Re-running after a failure adds only what is
    missing."""
    label = LabelSettings(**settings)
    result = sync_queue(
        studio(label),
        queue,
        project_title,
        class_names,
        annotators_per_task=2 if label.review == "agreement" else 1,
        document_root=label.document_root,
        s3_endpoint=label.s3_endpoint,
        batch_size=label.batch_size,
        max_tasks=label.max_tasks,
    )
    logger.info(
        "Label Studio project %r (%s): %d tasks created, %d already there; %s",
        result.project_title,
        result.project_url,
        result.created,
        result.already_there,
        result.storage,
    )
    log_metadata(
        {
            "project_url": result.project_url,
            "project_id": result.project_id,
            "created": result.created,
            "already_there": result.already_there,
        }
    )
    return result
