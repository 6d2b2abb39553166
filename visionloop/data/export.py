"""Export a data set version to the ultralytics YOLO layout.

``<out>/images/<split>/<name>`` and ``<out>/labels/<split>/<stem>.txt`` with lines
``class_id cx cy w h`` normalised to [0, 1], plus ``<out>/data.yaml`` with an absolute
``path:`` and no ``download:`` key, which ultralytics reads offline. File names are
``<source stem>-<sha256[:8]><ext>`` (``export_stem``): readable on ultralytics' plots,
and two source files with the same name never collide.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from visionloop.data.dataset import ImageDataset
from visionloop.data.split import SPLITS
from visionloop.data.types import ImageRecord


def export_stem(record: ImageRecord) -> str:
    """``<source file stem>-<sha256[:8]>``: the name a person recognises (ultralytics
    writes it on its sample plots), made unique by the content hash; the stem is cut to
    40 characters and keeps letters, digits, ``-`` and ``_``."""
    name = record.path.rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0] if not name.startswith(".") else name.lstrip(".")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:40].strip("_") or "image"
    return f"{stem}-{record.sha256[:8]}"


def yolo_lines(record: ImageRecord) -> str:
    lines = []
    for b in record.boxes:
        cx = (b.x1 + b.x2) / 2 / record.width
        cy = (b.y1 + b.y2) / 2 / record.height
        w = (b.x2 - b.x1) / record.width
        h = (b.y2 - b.y1) / record.height
        lines.append(f"{b.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def export_yolo(dataset: ImageDataset, out_dir: str | Path, splits: tuple[str, ...] = SPLITS) -> Path:
    """Write the labelled images of ``splits``; return the path of ``data.yaml``.

    Images are hard-linked from a local blob store when possible, else copied.
    Raises ``ValueError`` when the train split is empty.
    """
    out = Path(out_dir).resolve()
    counts = {}
    for split in splits:
        records = [r for r in dataset.split(split) if r.labeled]
        counts[split] = len(records)
        img_dir, lbl_dir = out / "images" / split, out / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for r in records:
            stem = export_stem(r)
            target = img_dir / f"{stem}{r.ext}"
            if not target.exists():
                _place(dataset, r, target)
            (lbl_dir / f"{stem}.txt").write_text(yolo_lines(r))
    if counts.get("train", 0) == 0:
        raise ValueError(f"data set {dataset.short_id} has no labelled training images to export")
    data = {
        "path": str(out),
        **{s: f"images/{s}" for s in splits if counts[s]},
        "names": dict(enumerate(dataset.class_names)),
    }
    if "val" not in data:
        data["val"] = "images/train"
    yaml_path = out / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return yaml_path


def _place(dataset: ImageDataset, record: ImageRecord, target: Path) -> None:
    local = dataset.blobs.local_path(record.sha256, record.ext)
    if local is not None and local.is_file():
        try:
            os.link(local, target)
            return
        except OSError:
            pass
    target.write_bytes(dataset.read_bytes(record))
