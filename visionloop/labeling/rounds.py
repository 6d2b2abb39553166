"""A labeling round against a Label Studio server: send the queue (creating no task
twice), then read every task back, review it, send rejected ones back to the queue and
write the accepted labels as a Label Studio JSON export into the raw image store.

The export (``labels/label-studio-project-<id>.json``) holds every accepted task of the
project so far, each with exactly its accepted annotation and ``data.image`` relative to
the store's root, so the data pipeline reads the store as a ``label-studio`` source:
accepted images come out labelled, every other image unlabeled.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from visionloop.labeling.queue import image_url, task_payload
from visionloop.labeling.review import ReviewPolicy, boxes_of, review_task
from visionloop.labeling.studio import Studio
from visionloop.labeling.types import ImageState, LabelQueue, SyncResult, TaskDecision


def export_key(project_id: int) -> str:
    return f"labels/label-studio-project-{project_id}.json"


def sync_queue(
    studio: Studio,
    queue: LabelQueue,
    title: str,
    class_names: list[str],
    annotators_per_task: int,
    document_root: str,
    s3_endpoint: str | None = None,
    batch_size: int = 100,
    max_tasks: int | None = None,
) -> SyncResult:
    """Create or update the project and add a task for each queued image that has
    none yet (found by sha256), most uncertain first, ``batch_size`` per request. If a
    request fails, what went before is in Label Studio and the next run skips it."""
    project_id, _ = studio.ensure_project(
        title,
        class_names,
        annotators_per_task,
        description=f"visionloop labeling queue of {queue.raw_images}",
    )
    raw = queue.raw_images
    if raw.startswith("s3://"):
        bucket, _, prefix = raw[5:].partition("/")
        storage = studio.ensure_s3_storage(project_id, bucket, prefix.rstrip("/"), s3_endpoint, None)
    else:
        storage = studio.ensure_local_storage(project_id, raw)
    existing = studio.task_shas(project_id)
    todo = [item for item in queue.items if item.image.sha256 not in existing]
    already_there = len(queue.items) - len(todo)
    if max_tasks is not None:
        todo = todo[:max_tasks]
    created = 0
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        payload = [task_payload(i, image_url(i.image.path, raw, document_root)) for i in batch]
        created += studio.import_tasks(project_id, payload)
    return SyncResult(
        url=studio.url,
        project_id=project_id,
        project_title=title,
        project_url=studio.project_url(project_id),
        created=created,
        already_there=already_there,
        storage=storage,
    )


def review_project(
    studio: Studio, project_id: int, policy: ReviewPolicy, requeue: bool = True
) -> tuple[list[TaskDecision], list[dict[str, Any]], list[int]]:
    """Review every task of the project: (decisions, the export's tasks, annotation
    ids sent back to the queue). Rejected annotations are marked cancelled in Label
    Studio (with ``requeue``), so their tasks are labelled again."""
    users = studio.users() if policy.reviewers else {}
    decisions: list[TaskDecision] = []
    export: list[dict[str, Any]] = []
    requeued: list[int] = []
    for task in sorted(studio.tasks(project_id), key=lambda t: int(t["id"])):
        data = task.get("data") or {}
        verdict = review_task(task, policy, users)
        annotators = sorted(
            {
                str(a.get("created_username") or a.get("completed_by") or "").strip()
                for a in task.get("annotations") or []
            }
        )
        annotation = verdict.annotation
        decisions.append(
            TaskDecision(
                task_id=int(task["id"]),
                sha256=str(data.get("sha256", "")),
                path=str(data.get("path", "")),
                state=verdict.state,
                annotation_id=int(annotation["id"]) if annotation else None,
                annotators=[a for a in annotators if a],
                reviewer=verdict.reviewer,
                reason=verdict.reason,
                boxes=len(boxes_of(annotation)) if annotation else 0,
            )
        )
        if verdict.state == ImageState.ACCEPTED and annotation is not None and data.get("path"):
            export.append(
                {
                    "id": int(task["id"]),
                    "project": f"{studio.url}/projects/{project_id}",
                    "data": {"image": str(data["path"]), "sha256": data.get("sha256")},
                    "annotations": [
                        {
                            "id": annotation["id"],
                            "result": annotation.get("result") or [],
                            "completed_by": annotation.get("completed_by"),
                            "updated_by": annotation.get("updated_by"),
                            "created_at": annotation.get("created_at"),
                            "updated_at": annotation.get("updated_at"),
                            "was_cancelled": False,
                            "reviewed_by": verdict.reviewer,
                        }
                    ],
                }
            )
        if requeue:
            for annotation_id in verdict.reject:
                studio.cancel_annotation(annotation_id)
                requeued.append(annotation_id)
    return decisions, export, requeued


def export_bytes(export: list[dict[str, Any]]) -> bytes:
    """The export as canonical JSON bytes (the same labels give the same bytes)."""
    return json.dumps(export, sort_keys=True, indent=1).encode()


def export_digest(export: list[dict[str, Any]]) -> str:
    return hashlib.sha256(export_bytes(export)).hexdigest()
