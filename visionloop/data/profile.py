"""What a data source holds, before anything is trained: the label format and classes,
images and boxes per class, unlabeled images, image and box sizes, the splits the source
declares, and file names that look like crops or frames of one capture.

``profile_source`` reads each image's header only (its size; nothing is decoded) through
the same ingestion as the data pipeline, so what it reports is what the pipeline will
see. ``run.py init`` derives a configuration from it (``visionloop.onboarding``).
"""

from __future__ import annotations

import io
import re
import statistics
from collections import Counter
from typing import Any

from PIL import Image
from pydantic import BaseModel, Field

from visionloop.data.ingest import Scan, group_of
from visionloop.data.sources import DataSource
from visionloop.data.types import Candidate, LabelStatus

SMALL_SIDE_PX = 16  # a box whose shorter side is below this, once the image is resized, is small
REFERENCE_IMGSZ = 640  # the resolution "small" is judged at (YOLO's native training size)
# File-name shapes of several crops, tiles or frames of one capture, tried in order.
GROUP_PATTERNS = (
    r"^(?P<group>.+?)-cropped-",
    r"^(?P<group>.+?)[-_.](?:crop|tile|patch|frame|part|aug)[-_]?\d+",
    r"^(?P<group>.+?)[-_]\d{1,4}\.[^.]+$",
)
MIN_GROUPED_SHARE = 0.3  # share of images in groups of two or more for a pattern to count
MAX_GROUP_SHARE = 1 / 3  # a pattern that puts more than this share in one group is rejected
MIN_GROUPS = 3


class SizeStats(BaseModel):
    """Distribution of a size in pixels (or a fraction, for boxes): quantiles and range."""

    n: int = 0
    min: float = 0.0
    p10: float = 0.0
    median: float = 0.0
    p90: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, values: list[float]) -> SizeStats:
        if not values:
            return cls()
        ordered = sorted(values)

        def q(f: float) -> float:
            return float(ordered[min(len(ordered) - 1, int(f * len(ordered)))])

        return cls(
            n=len(ordered),
            min=float(ordered[0]),
            p10=q(0.1),
            median=float(statistics.median(ordered)),
            p90=q(0.9),
            max=float(ordered[-1]),
        )


class DataProfile(BaseModel):
    """The summary ``run.py init`` prints and derives settings from."""

    source: str
    format: str
    class_names: list[str]
    images: int = 0
    labeled: int = 0
    unlabeled: int = 0
    unreadable: list[str] = Field(default_factory=list)  # no image header (QA will quarantine them)
    images_per_class: dict[str, int] = Field(default_factory=dict)
    boxes_per_class: dict[str, int] = Field(default_factory=dict)
    background_images: int = 0  # labelled, no box
    width: SizeStats = Field(default_factory=SizeStats)
    height: SizeStats = Field(default_factory=SizeStats)
    long_side: SizeStats = Field(default_factory=SizeStats)
    box_side: SizeStats = Field(default_factory=SizeStats)  # shorter box side / longer image side
    small_share: float = 0.0  # boxes under SMALL_SIDE_PX at REFERENCE_IMGSZ
    declared_splits: dict[str, int] = Field(default_factory=dict)  # split -> labelled images
    group_pattern: str | None = None
    groups: int = 0  # capture groups under ``group_pattern`` (labelled images)
    grouped_share: float = 0.0  # of labelled images, in a group of two or more
    group_examples: list[str] = Field(default_factory=list)

    def lines(self) -> list[str]:
        """The short data summary ``run.py init`` prints."""
        size = self.long_side
        lines = [
            f"Source      {self.source} ({self.format} labels)",
            f"  classes   {len(self.class_names)}: {', '.join(self.class_names) or '(none found)'}",
            f"  images    {self.images}: {self.labeled} labelled ({self.background_images} with no object), "
            f"{self.unlabeled} unlabeled"
            + (f", {len(self.unreadable)} unreadable" if self.unreadable else ""),
            "  per class "
            + (
                "; ".join(
                    f"{name}: {self.images_per_class.get(name, 0)} images, {n} boxes"
                    for name, n in self.boxes_per_class.items()
                )
                or "no box"
            ),
            f"  image size longer side median {size.median:.0f} px (p10 {size.p10:.0f}, p90 {size.p90:.0f}, "
            f"{size.min:.0f}-{size.max:.0f}); width median {self.width.median:.0f}, height median "
            f"{self.height.median:.0f}",
            f"  box size  shorter side median {self.box_side.median:.1%} of the image's longer side; "
            f"{self.small_share:.0%} of boxes are small (< {SMALL_SIDE_PX} px at {REFERENCE_IMGSZ})",
            "  splits    "
            + (
                "declared by the source: " + ", ".join(f"{k} {v}" for k, v in self.declared_splits.items())
                if self.declared_splits
                else "none declared (visionloop will split, group-aware)"
            ),
        ]
        if self.group_pattern:
            lines.append(
                f"  groups    file names look like parts of one capture: {self.groups} groups, "
                f"{self.grouped_share:.0%} of images in groups of 2+ (e.g. {', '.join(self.group_examples[:3])})"
            )
        return lines


def _header_size(source: DataSource, path: str) -> tuple[int, int] | None:
    """(width, height) from the image header, or None when it is not an image (Pillow's
    plugins raise many kinds of error on bytes that are not theirs)."""
    try:
        local = source.local_path(path)
        fh: Any = open(local, "rb") if local is not None else io.BytesIO(source.read_bytes(path))  # noqa: SIM115
        with fh, Image.open(fh) as img:
            return int(img.width), int(img.height)
    except Exception:
        return None


def suggest_group_pattern(names: list[str]) -> tuple[str | None, dict[str, int]]:
    """The first of ``GROUP_PATTERNS`` that groups at least ``MIN_GROUPED_SHARE`` of the
    file names into groups of two or more, none holding over ``MAX_GROUP_SHARE`` of
    them and making at least ``MIN_GROUPS`` groups (a pattern that lumps everything
    together is no capture group); and its groups' sizes. (None, {}) when none fits."""
    if len(names) < 4:
        return None, {}
    for pattern in GROUP_PATTERNS:
        compiled = re.compile(pattern)
        sizes = Counter(group_of(name, compiled) for name in names)
        grouped = sum(n for n in sizes.values() if n > 1)
        largest = max(sizes.values())
        if (
            grouped >= MIN_GROUPED_SHARE * len(names)
            and largest <= MAX_GROUP_SHARE * len(names)
            and len(sizes) >= MIN_GROUPS
        ):
            return pattern, dict(sizes)
    return None, {}


def profile_source(
    source: DataSource, fmt: str = "auto", class_names: list[str] | None = None, max_sizes: int = 5000
) -> DataProfile:
    """Profile ``source``; image headers are read for the first ``max_sizes`` images
    (all of them, for most sources)."""
    scan = Scan(source, fmt, class_names)
    profile = DataProfile(source=source.uri, format=scan.format, class_names=list(scan.class_names))
    widths: list[float] = []
    heights: list[float] = []
    box_sides: list[float] = []
    names: list[str] = []
    images_per_class: Counter[str] = Counter()
    boxes_per_class: Counter[str] = Counter()
    declared: Counter[str] = Counter()
    for cand in scan.candidates():
        if not cand.exists:
            continue
        profile.images += 1
        size = _header_size(source, cand.path) if profile.images <= max_sizes else None
        if size is None and profile.images <= max_sizes:
            profile.unreadable.append(cand.path)
        if size is not None:
            widths.append(size[0])
            heights.append(size[1])
        if cand.labels.status != LabelStatus.LABELED:
            profile.unlabeled += 1
            continue
        profile.labeled += 1
        names.append(cand.path.rsplit("/", 1)[-1])
        if cand.split:
            declared[cand.split] += 1
        _count_boxes(cand, size, profile.class_names, images_per_class, boxes_per_class, box_sides)
        if not cand.labels.boxes:
            profile.background_images += 1
    profile.images_per_class = dict(sorted(images_per_class.items()))
    profile.boxes_per_class = dict(sorted(boxes_per_class.items()))
    profile.width, profile.height = SizeStats.of(widths), SizeStats.of(heights)
    profile.long_side = SizeStats.of([max(w, h) for w, h in zip(widths, heights, strict=True)])
    profile.box_side = SizeStats.of(box_sides)
    small = SMALL_SIDE_PX / REFERENCE_IMGSZ
    profile.small_share = sum(1 for s in box_sides if s < small) / len(box_sides) if box_sides else 0.0
    profile.declared_splits = dict(sorted(declared.items()))
    pattern, sizes = suggest_group_pattern(names)
    if pattern:
        profile.group_pattern = pattern
        profile.groups = len(sizes)
        profile.grouped_share = sum(n for n in sizes.values() if n > 1) / len(names)
        profile.group_examples = [g for g, n in sorted(sizes.items(), key=lambda kv: -kv[1]) if n > 1][:5]
    return profile


def _count_boxes(
    cand: Candidate,
    size: tuple[int, int] | None,
    class_names: list[str],
    images_per_class: Counter[str],
    boxes_per_class: Counter[str],
    box_sides: list[float],
) -> None:
    """Add one labelled image's boxes to the counts; box sides as a fraction of the
    image's longer side (normalised boxes need no image size, pixel ones do)."""
    seen: set[str] = set()
    for box in cand.labels.boxes:
        name = class_names[box.class_id] if 0 <= box.class_id < len(class_names) else str(box.class_id)
        boxes_per_class[name] += 1
        seen.add(name)
        w, h = abs(box.x2 - box.x1), abs(box.y2 - box.y1)
        if cand.labels.normalized:
            if size is not None:
                long_side = max(size)
                box_sides.append(min(w * size[0], h * size[1]) / long_side)
            else:
                box_sides.append(min(w, h))
        elif size is not None:
            box_sides.append(min(w, h) / max(size))
    for name in seen:
        images_per_class[name] += 1
