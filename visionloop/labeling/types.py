"""Types of a labeling round: what was queued, what came back and what was decided."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class ImageState(str, Enum):  # noqa: UP042 - str() of a member stays "ImageState.X"
    """Where one image of the raw store stands in labeling.

    ``accepted``: a finished annotation passed review and is in the labels export;
    ``rejected``: its last annotation was rejected, so the task is back in the queue;
    ``in_review``: annotated, waiting for a reviewer (or a second annotator);
    ``queued``: a task without a finished annotation; ``quarantined``: not sent (the
    bytes are not a usable image; the reason says why); ``labeled_before``: the image
    is already labelled in the base data set, so it was not sent."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_REVIEW = "in_review"
    QUEUED = "queued"
    QUARANTINED = "quarantined"
    LABELED_BEFORE = "labeled_before"


class RawImage(BaseModel):
    """An image found in the raw image store. ``path`` is relative to the store's root;
    ``meta`` is what the edge runtime recorded beside a feedback image (model version,
    scores, device), empty for images that arrived another way."""

    sha256: str
    path: str
    size: int
    meta: dict[str, object] = Field(default_factory=dict)


class PreLabel(BaseModel):
    """One box predicted by the production model, in pixels of the image (xyxy)."""

    class_name: str
    score: float
    box: tuple[float, float, float, float]


class QueueItem(BaseModel):
    """An image to be labelled, with the production model's view of it.

    ``uncertainty`` in [0, 1]: 1 - |2s - 1| of the detection whose score ``s`` is
    closest to 0.5 (0 when the model saw nothing); higher means the model is less sure,
    and such images are labelled first."""

    image: RawImage
    width: int
    height: int
    uncertainty: float
    prelabels: list[PreLabel] = Field(default_factory=list)
    model_version: str | None = None


class Quarantined(BaseModel):
    path: str
    sha256: str | None
    reason: str


class LabelQueue(BaseModel):
    """The gathering step's output: images to send, most uncertain first, and every
    other raw image with why it is not sent. ``found == len(items) + len(quarantined)
    + labeled_before`` always holds."""

    raw_images: str
    found: int
    labeled_before: int
    items: list[QueueItem] = Field(default_factory=list)
    quarantined: list[Quarantined] = Field(default_factory=list)
    model_name: str | None = None
    model_version: str | None = None

    def feedback(self) -> dict[str, Any]:
        """Why the devices sent the queued images back, and, from the counters each
        device sends along, how many images with no detection they did not send (only a
        sample of those goes back: ``--empty-sample-rate``)."""
        reasons = {"uncertain": 0, "no_detection_sampled": 0, "other": 0}
        devices: dict[str, dict[str, int]] = {}
        for item in self.items:
            meta = item.image.meta
            reason = str(meta.get("reason") or "")
            key = (
                "uncertain"
                if reason.startswith("uncertain")
                else "no_detection_sampled"
                if reason.startswith("no detection")
                else "other"
            )
            reasons[key] += 1
            counters = meta.get("device_feedback")
            device = str(meta.get("device_id") or "")
            if isinstance(counters, dict) and device:
                seen = devices.setdefault(device, {})
                for name in ("uncertain", "empty_sampled", "empty_skipped"):
                    value = counters.get(name)
                    if isinstance(value, int):
                        seen[name] = max(seen.get(name, 0), value)
        return {**reasons, "devices": devices}

    def check_reconciles(self) -> None:
        counted = len(self.items) + len(self.quarantined) + self.labeled_before
        if self.found != counted:
            raise AssertionError(
                f"labeling queue for {self.raw_images} does not reconcile: {self.found} found, "
                f"{len(self.items)} queued + {len(self.quarantined)} quarantined + "
                f"{self.labeled_before} labelled before"
            )


class SyncResult(BaseModel):
    """What the sync with Label Studio did: the project, and how many tasks it created
    now against those that were already there (a re-run creates none twice)."""

    url: str
    project_id: int
    project_title: str
    project_url: str
    created: int
    already_there: int
    storage: str


class TaskDecision(BaseModel):
    """The review's verdict on one task."""

    task_id: int
    sha256: str
    path: str
    state: ImageState
    annotation_id: int | None = None
    annotators: list[str] = Field(default_factory=list)
    reviewer: str | None = None
    reason: str = ""
    boxes: int = 0


class LabelingRound(BaseModel):
    """One labeling run: the queue, the sync, every task's decision, the export written
    and whether the retraining trigger fired. Every raw image is accounted for in
    ``states`` (accepted, rejected, in review, queued, quarantined or labelled before)."""

    model_name: str
    raw_images: str
    studio_url: str
    project_id: int
    project_title: str
    project_url: str
    review_mode: str
    created_tasks: int
    already_there: int
    decisions: list[TaskDecision] = Field(default_factory=list)
    quarantined: list[Quarantined] = Field(default_factory=list)
    labeled_before: int = 0
    found: int = 0
    requeued: list[int] = Field(default_factory=list)
    export_path: str = ""
    export_fingerprint: str = ""
    labeling_job: str = ""

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in ImageState}
        for d in self.decisions:
            out[d.state.value] += 1
        out[ImageState.QUARANTINED.value] += len(self.quarantined)
        out[ImageState.LABELED_BEFORE.value] += self.labeled_before
        return out

    @property
    def accepted(self) -> list[TaskDecision]:
        return [d for d in self.decisions if d.state == ImageState.ACCEPTED]
