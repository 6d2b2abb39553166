"""The review: which finished annotation of a Label Studio task becomes a label.

Two policies (``label.review``):

- ``reviewer``: an annotation is accepted when a reviewer set its *review* choice to
  *accept* (``label_config.REVIEW``); *reject* sends the task back to the queue. With a
  list of reviewers, only a verdict saved by one of them counts (Label Studio records
  who last updated an annotation); with none, anyone's verdict counts (one person on a
  laptop). An annotation without a verdict waits in review.
- ``agreement``: the task is accepted when two annotations by different people agree
  (the same number of boxes, matched one to one with the same class and IoU at least
  ``agreement_iou``); the earlier of the two is the label. Two that disagree are
  rejected, and the task goes back to the queue for two fresh annotations. A reviewer's
  *reject* also rejects in this mode.

Cancelled (skipped) annotations never count; the pipeline marks a rejected annotation
cancelled when it sends the task back, so it stays visible in Label Studio as history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from visionloop.labeling.label_config import ACCEPT, BOXES, REJECT, REVIEW
from visionloop.labeling.types import ImageState


@dataclass(frozen=True)
class ReviewPolicy:
    mode: str = "reviewer"  # or "agreement"
    reviewers: frozenset[str] = frozenset()  # e-mail addresses; empty: anyone
    agreement_iou: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("reviewer", "agreement"):
            raise ValueError(f"review mode must be 'reviewer' or 'agreement', got {self.mode!r}")


@dataclass
class Verdict:
    state: ImageState
    annotation: dict[str, Any] | None = None  # the accepted annotation
    reject: list[int] = field(default_factory=list)  # annotation ids to send back (cancel)
    reviewer: str | None = None
    reason: str = ""


def boxes_of(annotation: dict[str, Any]) -> list[tuple[str, float, float, float, float]]:
    """(class name, x1, y1, x2, y2) in percent for each rectangle of an annotation."""
    out = []
    for region in annotation.get("result") or []:
        if region.get("type") != "rectanglelabels" or region.get("from_name", BOXES) != BOXES:
            continue
        v = region.get("value") or {}
        try:
            x, y, w, h = float(v["x"]), float(v["y"]), float(v["width"]), float(v["height"])
            name = str((v.get("rectanglelabels") or [""])[0])
        except (KeyError, TypeError, ValueError):
            continue
        out.append((name, x, y, x + w, y + h))
    return out


def verdict_of(annotation: dict[str, Any]) -> str | None:
    """The review choice of an annotation: ``accept``, ``reject`` or None."""
    for region in annotation.get("result") or []:
        if region.get("type") == "choices" and region.get("from_name") == REVIEW:
            choices = (region.get("value") or {}).get("choices") or []
            if choices and choices[0] in (ACCEPT, REJECT):
                return str(choices[0])
    return None


def _iou(a: tuple[str, float, float, float, float], b: tuple[str, float, float, float, float]) -> float:
    ix = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    iy = max(0.0, min(a[4], b[4]) - max(a[2], b[2]))
    inter = ix * iy
    union = (a[3] - a[1]) * (a[4] - a[2]) + (b[3] - b[1]) * (b[4] - b[2]) - inter
    return inter / union if union > 0 else 0.0


def agree(a: dict[str, Any], b: dict[str, Any], min_iou: float) -> bool:
    """Whether two annotations hold the same boxes: equal counts, and a one-to-one
    greedy match (best IoU first) with the same class and IoU >= ``min_iou``."""
    boxes_a, boxes_b = boxes_of(a), boxes_of(b)
    if len(boxes_a) != len(boxes_b):
        return False
    pairs = sorted(
        ((_iou(x, y), i, j) for i, x in enumerate(boxes_a) for j, y in enumerate(boxes_b) if x[0] == y[0]),
        reverse=True,
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    for iou, i, j in pairs:
        if iou < min_iou:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
    return len(used_a) == len(boxes_a)


def _user(annotation: dict[str, Any], key: str, users: dict[int, str]) -> str:
    value = annotation.get(key)
    if isinstance(value, dict):  # some endpoints expand the user
        return str(value.get("email") or value.get("id"))
    if value is None:
        return ""
    return users.get(int(value), str(value))


def _order(annotation: dict[str, Any]) -> tuple[str, int]:
    return (str(annotation.get("created_at", "")), int(annotation.get("id", 0)))


def review_task(task: dict[str, Any], policy: ReviewPolicy, users: dict[int, str] | None = None) -> Verdict:
    """The verdict on one task (a Label Studio task dict with its ``annotations``);
    ``users`` maps user ids to e-mail addresses."""
    users = users or {}
    all_annotations = sorted(task.get("annotations") or [], key=_order)
    live = [a for a in all_annotations if not a.get("was_cancelled")]
    history_rejected = any(a.get("was_cancelled") and verdict_of(a) == REJECT for a in all_annotations)

    def by_reviewer(a: dict[str, Any]) -> str | None:
        """Who set the verdict, if that person may review."""
        who = _user(a, "updated_by", users) or _user(a, "completed_by", users)
        if policy.reviewers and who not in policy.reviewers:
            return None
        return who or "anyone"

    rejected = [a for a in live if verdict_of(a) == REJECT and by_reviewer(a)]
    if rejected:
        return Verdict(
            ImageState.REJECTED,
            reject=[int(a["id"]) for a in rejected],
            reviewer=by_reviewer(rejected[-1]),
            reason="rejected by a reviewer",
        )
    if policy.mode == "reviewer":
        accepted = [a for a in live if verdict_of(a) == ACCEPT and by_reviewer(a)]
        if accepted:
            chosen = accepted[-1]
            return Verdict(ImageState.ACCEPTED, annotation=chosen, reviewer=by_reviewer(chosen))
        if live:
            waiting = "waiting for a reviewer"
            if any(verdict_of(a) for a in live):
                waiting += " (a verdict by someone who is not a reviewer does not count)"
            return Verdict(ImageState.IN_REVIEW, reason=waiting)
    else:
        latest: dict[str, dict[str, Any]] = {}
        for a in live:  # one annotation per person: their latest
            latest[_user(a, "completed_by", users)] = a
        people = sorted(latest.values(), key=_order)
        for i, a in enumerate(people):
            for b in people[i + 1 :]:
                if agree(a, b, policy.agreement_iou):
                    return Verdict(ImageState.ACCEPTED, annotation=a, reason="two annotators agree")
        if len(people) >= 2:
            return Verdict(
                ImageState.REJECTED,
                reject=[int(a["id"]) for a in people],
                reason=f"{len(people)} annotations disagree",
            )
        if people:
            return Verdict(ImageState.IN_REVIEW, reason="waiting for a second annotator")
    if history_rejected:
        return Verdict(ImageState.REJECTED, reason="rejected before; back in the queue")
    return Verdict(ImageState.QUEUED)
