"""A classification data set version: a manifest of (image, class, split) records and
the content-addressed image store the detection data sets use.

The version id is the sha256 of the canonical manifest: the class names and, per
image, its hash, label, leaf label (node sets that label by group keep none), split,
extension and, for a detector group's image, its boxes, in hash order. Where a file sat in the source is kept for display but
is not part of the id: the same images with the same labels give the same id, and a
node's data set drawn from a new leaf version keeps its id when its own records did
not change (that is what lets one child retrain alone).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from pydantic.dataclasses import dataclass

from visionloop.data.blobstore import BlobStore
from visionloop.data.dataset import ImageDataset
from visionloop.data.qa import pillow_open
from visionloop.data.types import Box
from visionloop.hierarchy.spec import FLAT, PARENT, HierarchyData, HierarchySpec

SCHEMA = 1
SPLITS = ("train", "val", "test")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(slots=True, kw_only=True)
class ClassRecord:
    """One image of a classification data set. ``label`` is the class this set trains
    on (a leaf class, a detector group's name, or a group in the parent's set); ``leaf``
    the leaf class where it differs and matters (the leaf data set's records carry it:
    None there too). ``boxes``: a detector group's image's objects (xyxy pixels of the
    stored image, class ids into the group's declared classes); None for the others."""

    sha256: str
    path: str
    label: str
    split: str
    width: int
    height: int
    ext: str = ".jpg"
    leaf: str | None = None
    boxes: list[Box] | None = None


class ClassificationManifest(BaseModel):
    schema_version: int = SCHEMA
    name: str
    class_names: list[str]
    source: str = ""
    parent_version: str | None = None  # the leaf data set version a node set was drawn from
    records: list[ClassRecord] = Field(default_factory=list)


def canonical_row(r: ClassRecord) -> list[Any]:
    row: list[Any] = [r.sha256, r.label, r.leaf or "", r.split, r.ext]
    if r.boxes is not None:  # only a detector group's images: the others keep their ids
        row.append(
            [[b.class_id, round(b.x1, 3), round(b.y1, 3), round(b.x2, 3), round(b.y2, 3)] for b in r.boxes]
        )
    return row


def manifest_version_id(manifest: ClassificationManifest) -> str:
    digest = hashlib.sha256(json.dumps([SCHEMA, manifest.class_names]).encode())
    for row in sorted((canonical_row(r) for r in manifest.records), key=lambda row: row[:5]):
        digest.update(b"\n" + json.dumps(row, separators=(",", ":")).encode())
    return digest.hexdigest()


class ClassificationDataset:
    """A manifest and the blob store that holds its images."""

    def __init__(self, manifest: ClassificationManifest, blobs: BlobStore) -> None:
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
    def records(self) -> list[ClassRecord]:
        return self.manifest.records

    def split(self, name: str) -> list[ClassRecord]:
        return [r for r in self.records if r.split == name]

    def read_bytes(self, record: ClassRecord) -> bytes:
        return self.blobs.get(record.sha256, record.ext)

    def stats(self) -> dict[str, Any]:
        per_class: dict[str, dict[str, int]] = {c: {} for c in self.class_names}
        for r in self.records:
            per_class.setdefault(r.label, {}).setdefault(r.split, 0)
            per_class[r.label][r.split] += 1
        return {
            "version_id": self.version_id,
            "name": self.manifest.name,
            "images": len(self.records),
            "per_split": dict(sorted(Counter(r.split for r in self.records).items())),
            "per_class": per_class,
            "classes": len(self.class_names),
        }


# --- ingestion ----------------------------------------------------------------------


class IngestReport(BaseModel):
    """What ingestion did: ``total == accepted + len(rejected)``; ``ignored`` are files
    or folders that are not images of a declared class."""

    source: str
    total: int = 0
    accepted: int = 0
    rejected: list[dict[str, str]] = Field(default_factory=list)
    ignored: list[dict[str, str]] = Field(default_factory=list)


def unit_hash(seed: int, sha256: str) -> float:
    """A seeded number in [0, 1) from an image's hash: the same image, the same number."""
    return int(hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()[:12], 16) / 16**12


def assign_split(sha256: str, hint: str | None, settings: HierarchyData) -> str:
    """``test`` and ``val`` folders are kept; train images (or, with no split folders,
    all images) are set aside for val and test by a seeded hash of their bytes."""
    if hint in ("val", "test"):
        return hint
    u = unit_hash(settings.seed, sha256)
    if hint is None:
        if u < settings.test_fraction:
            return "test"
        u = (u - settings.test_fraction) / (1 - settings.test_fraction)
    return "val" if u < settings.val_fraction else "train"


def scan(root: Path) -> list[tuple[str, str, str | None]]:
    """(relative path, class folder, split folder or None) of every file: ``<split>/<class>/*``
    when the root has ``train``, ``val`` or ``test`` folders, else ``<class>/*``."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"hierarchy data source {root} is not a folder of <class>/ or <split>/<class>/ images"
        )
    split_dirs: list[str | None] = [d for d in SPLITS if (root / d).is_dir()]
    out: list[tuple[str, str, str | None]] = []
    for split in split_dirs or [None]:
        base = root / split if split else root
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for f in sorted(p for p in class_dir.rglob("*") if p.is_file()):
                out.append((f.relative_to(root).as_posix(), class_dir.name, split))
    return out


def ingest(root: Path, spec: HierarchySpec, blobs: BlobStore) -> tuple[ClassificationDataset, IngestReport]:
    """Read a class-folder source into a leaf data set (the classes of every classifier
    child; a detector group's images join with ``with_detector_group``); images go into
    ``blobs``. Undecodable, too small and conflicting duplicate images are rejected
    with the reason; folders of undeclared classes are ignored."""
    leaves = spec.leaf_classes
    report = IngestReport(source=str(root))
    records: dict[str, ClassRecord] = {}
    for path, label, hint in scan(root):
        ext = Path(path).suffix.lower()
        if label not in leaves:
            report.ignored.append({"path": path, "reason": f"class folder {label!r} is not declared"})
            continue
        if ext not in IMAGE_EXTS:
            report.ignored.append({"path": path, "reason": f"not an image extension ({ext or 'none'})"})
            continue
        report.total += 1
        data = (root / path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        try:
            with pillow_open(data) as img:  # Pillow's own opener: not ultralytics' patched one
                img.load()
                width, height = img.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            report.rejected.append({"path": path, "rule": "undecodable", "reason": str(exc)})
            continue
        if min(width, height) < spec.data.min_side:
            report.rejected.append(
                {
                    "path": path,
                    "rule": "too_small",
                    "reason": f"{width}x{height} below {spec.data.min_side} px",
                }
            )
            continue
        if sha in records:
            other = records[sha]
            if other.label != label:
                report.rejected.append(
                    {
                        "path": path,
                        "rule": "conflicting_duplicate",
                        "reason": f"same bytes as {other.path} ({other.label})",
                    }
                )
            else:
                report.rejected.append(
                    {"path": path, "rule": "duplicate", "reason": f"same bytes as {other.path}"}
                )
            continue
        blobs.put(sha, ext, data)
        split = assign_split(sha, hint, spec.data)
        records[sha] = ClassRecord(
            sha256=sha, path=path, label=label, split=split, width=width, height=height, ext=ext
        )
    report.accepted = len(records)
    manifest = ClassificationManifest(
        name=spec.name, class_names=spec.leaf_labels, source=str(root), records=list(records.values())
    )
    return ClassificationDataset(manifest, blobs), report


def with_detector_group(
    leaf: ClassificationDataset, detections: ImageDataset, spec: HierarchySpec, group: str
) -> tuple[ClassificationDataset, int]:
    """The leaf data set with a detector group's images: each labelled image of the
    detection data set version (its split kept, so the parent is tested on the images
    the detector is tested on) as a whole image labelled ``group``, with its boxes.
    Unlabeled images (no split) stay out; an image already in the leaf set keeps its
    first label. Returns the new set and how many images were left out as duplicates."""
    declared = spec.groups[group].classes
    if detections.class_names != declared:
        raise ValueError(
            f"detection data set {detections.short_id} of group {group!r} has the classes "
            f"{detections.class_names}, the group declares {declared}"
        )
    kept = [r for r in leaf.records if r.label != group]
    seen = {r.sha256 for r in kept}
    duplicates = 0
    for r in detections.records:
        if not r.labeled or r.split is None:
            continue
        if r.sha256 in seen:
            duplicates += 1
            continue
        seen.add(r.sha256)
        if not leaf.blobs.has(r.sha256, r.ext):
            leaf.blobs.put(r.sha256, r.ext, detections.read_bytes(r))
        kept.append(
            ClassRecord(
                sha256=r.sha256,
                path=f"{group}/{r.path}",
                label=group,
                split=r.split,
                width=r.width,
                height=r.height,
                ext=r.ext,
                boxes=list(r.boxes),
            )
        )
    manifest = leaf.manifest.model_copy(update={"class_names": spec.leaf_labels, "records": kept})
    return ClassificationDataset(manifest, leaf.blobs), duplicates


# --- node data sets -------------------------------------------------------------------


def _ranked(records: list[ClassRecord], seed: int) -> list[ClassRecord]:
    return sorted(records, key=lambda r: (unit_hash(seed, r.sha256), r.sha256))


def parent_train(records: list[ClassRecord], spec: HierarchySpec) -> list[ClassRecord]:
    """The parent's train images, balanced as ``spec.parent`` says (see ``ParentSpec``)."""
    p, seed, group_of = spec.parent, spec.data.seed, spec.label_group
    if p.balance == "none":
        return records
    if p.balance == "group":
        by_group = {g: [r for r in records if group_of[r.label] == g] for g in spec.groups}
        n = p.per_group or min(len(v) for v in by_group.values())
        return [r for g in spec.groups for r in _ranked(by_group[g], seed)[:n]]
    by_class = {c: [r for r in records if r.label == c] for c in spec.leaf_labels}
    n = p.per_class or min(len(v) for v in by_class.values())
    return [r for c in spec.leaf_labels for r in _ranked(by_class[c], seed)[:n]]


def node_dataset(leaf: ClassificationDataset, spec: HierarchySpec, node: str) -> ClassificationDataset:
    """The data set one node trains and is tested on, drawn from the leaf data set:
    ``parent``: every group's images labelled by group (train balanced, val and test
    whole; a detector group's whole images); a classifier group: its classes' images;
    ``flat``: everything, by leaf label. A detector child trains on its detection data
    set, not on one of these."""
    records = leaf.records
    if node == PARENT:
        group_of = spec.label_group
        train = parent_train([r for r in records if r.split == "train"], spec)
        kept = train + [r for r in records if r.split != "train"]
        out = [replace(r, label=group_of[r.label], leaf=None, boxes=None) for r in kept]
    elif node == FLAT:
        out = [replace(r, boxes=None) for r in records]
    elif spec.is_detector(node):
        raise ValueError(
            f"group {node!r} has a detector child: it trains on the detection data set of its own "
            "source (groups.<group>.data), not on a classification set"
        )
    elif node in spec.groups:
        classes = set(spec.groups[node].classes)
        out = [r for r in records if r.label in classes]
    else:
        raise KeyError(f"no node {node!r} in hierarchy {spec.name}; nodes: {', '.join(spec.nodes)}, {FLAT}")
    manifest = ClassificationManifest(
        name=f"{spec.name}-{node}",
        class_names=spec.node_classes(node),
        source=leaf.manifest.source,
        parent_version=leaf.version_id,
        records=sorted(out, key=lambda r: (r.split, r.label, r.sha256)),
    )
    return ClassificationDataset(manifest, leaf.blobs)


def export_image_folder(dataset: ClassificationDataset, out_dir: Path) -> Path:
    """ultralytics' ImageFolder layout: ``<out>/<split>/<class>/<sha16><ext>``, every
    class folder in every split (empty where a split has none of it)."""
    for split in SPLITS:
        for c in dataset.class_names:
            (out_dir / split / c).mkdir(parents=True, exist_ok=True)
    for r in dataset.records:
        target = out_dir / r.split / r.label / f"{r.sha256[:16]}{r.ext}"
        local = dataset.blobs.local_path(r.sha256, r.ext)
        if local is not None:
            target.symlink_to(local)
        else:
            target.write_bytes(dataset.read_bytes(r))
    return out_dir


def test_records(dataset: ClassificationDataset) -> tuple[list[ClassRecord], list[bytes]]:
    records = dataset.split("test")
    if not records:
        raise ValueError(
            f"data set {dataset.manifest.name} {dataset.short_id} has no test images to evaluate on"
        )
    return records, [dataset.read_bytes(r) for r in records]
