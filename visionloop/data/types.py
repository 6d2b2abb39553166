"""Plain data types of the data pipeline: boxes, labels, candidates, records, quarantine.

Coordinates:
- ``Box`` holds ``x1, y1, x2, y2`` (xyxy). In a ``Labels`` object read from a source they
  are either normalised to [0, 1] (``Labels.normalized`` is True: YOLO txt, Label Studio)
  or pixels of the stored image (COCO, Ground Truth CSV).
- In an accepted ``ImageRecord`` boxes are always xyxy pixels of the stored image
  (after any EXIF orientation was applied).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import field
from enum import Enum
from typing import Any

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
    split: str | None = None  # the split the label file declares (``train``, ``val``, ``test``)

    @classmethod
    def unlabeled(cls) -> Labels:
        return make_labels(status=LabelStatus.UNLABELED)


class Candidate(BaseModel):
    """An image found by ingestion, not yet checked.

    ``path`` is relative to the source root (POSIX separators). It may escape the root
    when a label file names ``../x.jpg``; QA catches that. ``exists`` is False for a label
    entry whose image file is missing. ``plain`` is True when the listing found a file
    at ``path`` that is not a symlink, in folders that are not symlinks either
    (``SourceFile.plain``): it cannot lead out of the root, so QA does not resolve it.
    """

    path: str
    source_uri: str
    size: int = 0
    stamp: str = ""
    exists: bool = True
    plain: bool = False
    labels: Labels = Field(default_factory=Labels.unlabeled)
    group: str
    split: str | None = None  # declared by the source (label file, data.yaml or folder name)


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


class StraddlingGroup(BaseModel):
    """A capture group whose images the source put in more than one split."""

    group: str
    splits: dict[str, int]  # split -> images
    paths: list[str] = Field(default_factory=list)  # up to a few, for the report


class CrossSplitCopy(BaseModel):
    """The same image bytes declared in more than one split (one copy is kept: see the
    ``duplicate`` quarantine entries)."""

    sha256: str
    paths: dict[str, str]  # path -> declared split


class SplitLeakage(BaseModel):
    """What straddles the splits a source declares: capture groups (``group_pattern``)
    and identical images. Counts are complete; the lists hold the first examples."""

    declared: dict[str, int] = Field(default_factory=dict)  # split -> accepted labelled images
    undeclared: int = 0  # accepted labelled images with no declared split
    straddling_groups: int = 0
    identical_images: int = 0
    group_examples: list[StraddlingGroup] = Field(default_factory=list)
    identical_examples: list[CrossSplitCopy] = Field(default_factory=list)

    @property
    def leaks(self) -> int:
        return self.straddling_groups + self.identical_images


class QuarantineReport(BaseModel):
    """The outcome of QA. ``total == accepted + len(entries)`` always holds. ``leakage``
    is set when the source declares splits."""

    source: str
    total: int
    accepted: int
    entries: list[QuarantineEntry] = Field(default_factory=list)
    ignored: list[IgnoredFile] = Field(default_factory=list)
    converted: dict[str, int] = Field(default_factory=dict)
    exif_rotated: int = 0
    boxes_clipped: int = 0
    leakage: SplitLeakage | None = None

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


# Constructors that skip pydantic's validation, for the hot paths of ingestion and QA:
# validating costs about 5 µs per ``Box``, ``Labels`` or ``ImageRecord``, ten times the
# rest of making one, and on a re-run most of the time goes there. Use them only with
# values already of the declared types (``int(...)``, ``float(...)``, floats computed
# from floats, enum members, strings); anything from outside goes through the class
# itself. The objects they make are indistinguishable from validated ones. The fields
# are set through the slot descriptors, written out one by one (a loop costs as much
# as the validation it skips).


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of ``names``, which must be every field of ``cls`` in order."""
    declared = tuple(f.name for f in dataclasses.fields(cls))
    if declared != names:  # a field was added or moved: update the constructor below
        raise TypeError(f"{cls.__name__} fields are {declared}, not {names}")
    return tuple(vars(cls)[name].__set__ for name in names)


_new = object.__new__
_BOX = _setters(Box, ("class_id", "x1", "y1", "x2", "y2"))
_LABELS = _setters(
    Labels,
    ("status", "boxes", "normalized", "problems", "unknown_classes", "labeling_job", "group", "split"),
)
_RECORD = _setters(
    ImageRecord,
    (
        "sha256",
        "path",
        "width",
        "height",
        "status",
        "boxes",
        "source",
        "group",
        "split",
        "source_sha256",
        "converted_from",
        "labeling_job",
        "ext",
    ),
)


def make_box(class_id: int, x1: float, y1: float, x2: float, y2: float) -> Box:
    """``Box(...)`` unvalidated: ``class_id`` an int, the corners floats."""
    box: Box = _new(Box)
    set_id, set_x1, set_y1, set_x2, set_y2 = _BOX
    set_id(box, class_id)
    set_x1(box, x1)
    set_y1(box, y1)
    set_x2(box, x2)
    set_y2(box, y2)
    return box


def make_labels(
    labeling_job: str | None = None, group: str | None = None, status: LabelStatus = LabelStatus.LABELED
) -> Labels:
    """``Labels(status=..., labeling_job=..., group=...)`` unvalidated: no boxes yet,
    pixel coordinates."""
    labels: Labels = _new(Labels)
    set_status, set_boxes, set_normalized, set_problems, set_unknown, set_job, set_group, set_split = _LABELS
    set_status(labels, status)
    set_boxes(labels, [])
    set_normalized(labels, False)
    set_problems(labels, [])
    set_unknown(labels, [])
    set_job(labels, labeling_job)
    set_group(labels, group)
    set_split(labels, None)
    return labels


def make_record(
    *,
    sha256: str,
    path: str,
    width: int,
    height: int,
    status: LabelStatus,
    boxes: list[Box],
    source: str,
    group: str,
    split: str | None = None,
    source_sha256: str | None = None,
    converted_from: str | None = None,
    labeling_job: str | None = None,
    ext: str = ".jpg",
) -> ImageRecord:
    """``ImageRecord(...)`` unvalidated (the same keywords)."""
    record: ImageRecord = _new(ImageRecord)
    (
        set_sha,
        set_path,
        set_width,
        set_height,
        set_status,
        set_boxes,
        set_source,
        set_group,
        set_split,
        set_source_sha,
        set_converted,
        set_job,
        set_ext,
    ) = _RECORD
    set_sha(record, sha256)
    set_path(record, path)
    set_width(record, width)
    set_height(record, height)
    set_status(record, status)
    set_boxes(record, boxes)
    set_source(record, source)
    set_group(record, group)
    set_split(record, split)
    set_source_sha(record, source_sha256)
    set_converted(record, converted_from)
    set_job(record, labeling_job)
    set_ext(record, ext)
    return record
