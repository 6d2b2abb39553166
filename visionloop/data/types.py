"""Plain data types of the data pipeline: boxes, labels, candidates, records, quarantine.

Coordinates:
- ``Box`` holds ``x1, y1, x2, y2`` (xyxy). In a ``Labels`` object read from a source they
  are either normalised to [0, 1] (``Labels.normalized`` is True: YOLO txt, Label Studio)
  or pixels of the stored image (COCO, Ground Truth CSV).
- In an accepted ``ImageRecord`` boxes are always xyxy pixels of the stored image
  (after any EXIF orientation was applied).
"""

from __future__ import annotations

from dataclasses import field
from enum import Enum

from pydantic import BaseModel, Field
from pydantic.dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Box:
    """One bounding box, ``class_id`` plus corners in xyxy order.

    A slotted (pydantic) dataclass rather than a model: a data set holds one per object,
    and a model instance is ten times the size (its ``__dict__`` and fields-set)."""

    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float

    def as_tuple(self) -> tuple[int, float, float, float, float]:
        return (self.class_id, self.x1, self.y1, self.x2, self.y2)


class LabelStatus(str, Enum):  # noqa: UP042 - str() of a member stays "LabelStatus.X"
    """Whether an image has been labelled. An empty box list with ``LABELED`` means
    "checked, nothing to find" (e.g. a tag with no scratch); ``UNLABELED`` means nobody
    has looked yet."""

    LABELED = "labeled"
    UNLABELED = "unlabeled"


@dataclass(slots=True)
class Labels:
    """The labels an importer found for one image, in the importer's coordinates.

    ``problems`` carries what the importer could not parse (a malformed line, an unknown
    class name); the QA step quarantines the image with that reason instead of guessing.
    A slotted (pydantic) dataclass, like ``Box``: ingestion holds one per labelled image.
    """

    status: LabelStatus = LabelStatus.LABELED
    boxes: list[Box] = field(default_factory=list)
    normalized: bool = False
    problems: list[str] = field(default_factory=list)
    unknown_classes: list[str] = field(default_factory=list)
    labeling_job: str | None = None
    group: str | None = None

    @classmethod
    def unlabeled(cls) -> Labels:
        return cls(status=LabelStatus.UNLABELED)


class Candidate(BaseModel):
    """An image found by ingestion, not yet checked.

    ``path`` is relative to the source root (POSIX separators). It may escape the root
    when a label file names ``../x.jpg``; QA catches that. ``exists`` is False for a label
    entry whose image file is missing.
    """

    path: str
    source_uri: str
    size: int = 0
    stamp: str = ""
    exists: bool = True
    labels: Labels = Field(default_factory=Labels.unlabeled)
    group: str


@dataclass(slots=True, kw_only=True)
class ImageRecord:
    """One accepted image of a data set version (a manifest row).

    ``sha256`` is the hash of the stored bytes (after a mode conversion or EXIF rotation
    these differ from the source file, whose hash is ``source_sha256``). Boxes are xyxy
    pixels of the stored image. ``split`` is ``train``, ``val``, ``test`` or None for an
    unlabeled image, which waits to be labelled.

    A slotted (pydantic) dataclass with keyword-only fields: a manifest holds one per
    image, and a model instance (with its ``__dict__`` and fields-set) is ten times the
    size. Copy one with ``dataclasses.replace``.
    """

    sha256: str
    path: str
    width: int
    height: int
    status: LabelStatus
    boxes: list[Box] = field(default_factory=list)
    source: str
    group: str
    split: str | None = None
    source_sha256: str | None = None
    converted_from: str | None = None
    labeling_job: str | None = None
    ext: str = ".jpg"

    @property
    def labeled(self) -> bool:
        return self.status == LabelStatus.LABELED


class QuarantineEntry(BaseModel):
    """A rejected item: the file, the rule that rejected it and why, in words."""

    path: str
    source_uri: str
    rule: str
    reason: str
    sha256: str | None = None


class IgnoredFile(BaseModel):
    """A file in the source that is not an image candidate (e.g. ``README.md``)."""

    path: str
    reason: str


class QuarantineReport(BaseModel):
    """The outcome of QA. ``total == accepted + len(entries)`` always holds."""

    source: str
    total: int
    accepted: int
    entries: list[QuarantineEntry] = Field(default_factory=list)
    ignored: list[IgnoredFile] = Field(default_factory=list)
    converted: dict[str, int] = Field(default_factory=dict)
    exif_rotated: int = 0
    boxes_clipped: int = 0

    @property
    def quarantined(self) -> int:
        return len(self.entries)

    def counts_by_rule(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.rule] = counts.get(entry.rule, 0) + 1
        return dict(sorted(counts.items()))

    def check_reconciles(self) -> None:
        """Raise if the counts do not add up: nothing may be lost between in and out."""
        if self.total != self.accepted + self.quarantined:
            raise AssertionError(
                f"QA counts do not reconcile for {self.source}: {self.total} in, "
                f"{self.accepted} accepted + {self.quarantined} quarantined"
            )


class AcceptedImages(BaseModel):
    """QA's output: the accepted records (not yet split) and where their bytes are."""

    source: str
    label_format: str
    class_names: list[str]
    blob_root: str
    records: list[ImageRecord] = Field(default_factory=list)
