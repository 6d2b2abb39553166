"""An image data set version: a manifest of records plus a content-addressed image store.

The version id is the sha256 of the canonical manifest: the class names and, per image,
its hash, relative path, size, labels, group and split, in hash order. Where the data
was read from (an absolute path, a bucket) is kept in the manifest but is not part of
the id, so the same data gives the same id on any machine.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from pydantic import BaseModel, Field

from visionloop.data.blobstore import BlobStore
from visionloop.data.split import SplitPlan
from visionloop.data.types import ImageRecord

MANIFEST_SCHEMA = 1


class DatasetManifest(BaseModel):
    """What is stored as ``manifest.json``: the records and where they came from."""

    schema_version: int = MANIFEST_SCHEMA
    name: str = "image_dataset"
    class_names: list[str]
    source: str = ""
    label_format: str = ""
    records: list[ImageRecord] = Field(default_factory=list)
    parent_version: str | None = None
    labeling_jobs: list[str] = Field(default_factory=list)
    split_plan: SplitPlan | None = None  # how the splits were made (not part of the version id)


def _round3(v: float) -> float:
    """``round(v, 3)``, skipped for a float that is a whole number (its own rounding):
    pixel boxes mostly are, and ``round`` with digits costs a microsecond each."""
    return v if v.__class__ is float and v.is_integer() else round(v, 3)


def canonical_row(r: ImageRecord) -> list[Any]:
    boxes = [[b.class_id, _round3(b.x1), _round3(b.y1), _round3(b.x2), _round3(b.y2)] for b in r.boxes]
    return [
        r.sha256,
        r.path,
        r.width,
        r.height,
        r.status.value,
        boxes,
        r.group,
        r.split,
        r.labeling_job,
        r.ext,
        r.source_sha256,
        r.converted_from,
    ]


_COMPACT = json.JSONEncoder(separators=(",", ":"))
_compact_json = _COMPACT.encode  # json.dumps(..., separators=) per row


def _row_encoder() -> Callable[[list[Any]], str]:
    """``_compact_json`` for a manifest row. ``JSONEncoder.encode`` makes a new C encoder
    for every call, which took a third of the time of encoding 10,000 rows; this one is
    made once, with the same settings (rows cannot be circular, so nothing checks). The
    plain ``_compact_json`` where the C accelerator is missing or differs."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _compact_json
    try:
        encoder = make(
            None, _COMPACT.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )
        if "".join(encoder(["\u00e9", 1.5, None, [True]], 0)) != _compact_json(["\u00e9", 1.5, None, [True]]):
            return _compact_json
    except TypeError:
        return _compact_json
    return lambda row: "".join(encoder(row, 0))


_encode_row = _row_encoder()


def manifest_version_id(manifest: DatasetManifest) -> str:
    digest = hashlib.sha256(json.dumps([MANIFEST_SCHEMA, manifest.class_names]).encode())
    ordered = sorted(manifest.records, key=attrgetter("path"))
    ordered.sort(key=attrgetter("sha256"))  # stable: by (sha256, path), with no key tuples
    for record in ordered:
        digest.update(b"\n")
        digest.update(_encode_row(canonical_row(record)).encode())
    return digest.hexdigest()


class ImageDataset:
    """A manifest and the blob store that holds its images."""

    def __init__(self, manifest: DatasetManifest, blobs: BlobStore) -> None:
        self.manifest = manifest
        self.blobs = blobs
        self._version_id: str | None = None

    @property
    def version_id(self) -> str:
        if self._version_id is None:
            self._version_id = manifest_version_id(self.manifest)
        return self._version_id

    @property
    def short_id(self) -> str:
        return self.version_id[:12]

    @property
    def class_names(self) -> list[str]:
        return self.manifest.class_names

    @property
    def records(self) -> list[ImageRecord]:
        return self.manifest.records

    def split(self, name: str) -> list[ImageRecord]:
        return [r for r in self.records if r.split == name]

    def read_bytes(self, record: ImageRecord) -> bytes:
        return self.blobs.get(record.sha256, record.ext)

    def stats(self) -> dict[str, Any]:
        """Counts per split (``unlabeled`` for images waiting for labels), images and
        boxes per class and split, and boxes per image."""
        per_split = Counter(r.split or "unlabeled" for r in self.records)
        boxes_per_class: dict[str, dict[str, int]] = {}
        images_per_class: dict[str, dict[str, int]] = {}
        for r in self.records:
            if not r.labeled:
                continue
            split = r.split or "none"
            seen: set[int] = set()
            for b in r.boxes:
                name = self._name(b.class_id)
                boxes_per_class.setdefault(name, {}).setdefault(split, 0)
                boxes_per_class[name][split] += 1
                seen.add(b.class_id)
            for cid in seen or {-1}:
                name = self._name(cid) if cid >= 0 else "(no objects)"
                images_per_class.setdefault(name, {}).setdefault(split, 0)
                images_per_class[name][split] += 1
        labeled = [r for r in self.records if r.labeled]
        n_boxes = [len(r.boxes) for r in labeled]
        return {
            "version_id": self.version_id,
            "images": len(self.records),
            "labeled": len(labeled),
            "unlabeled": len(self.records) - len(labeled),
            "per_split": dict(sorted(per_split.items())),
            "images_per_class": images_per_class,
            "boxes_per_class": boxes_per_class,
            "boxes": sum(n_boxes),
            "boxes_per_image_mean": round(sum(n_boxes) / len(n_boxes), 3) if n_boxes else 0.0,
            "boxes_per_image_max": max(n_boxes, default=0),
            "groups": len({r.group for r in self.records}),
        }

    def _name(self, class_id: int) -> str:
        names = self.manifest.class_names
        return names[class_id] if 0 <= class_id < len(names) else str(class_id)
