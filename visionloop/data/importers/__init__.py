"""Label importers: YOLO txt, COCO JSON, Label Studio JSON export, Ground Truth CSV.

``import_labels`` picks the importer named by ``fmt`` (or detects it with ``auto``),
reads the label files of a source and returns a ``LabelIndex``.
"""

from __future__ import annotations

import posixpath
from typing import Any

from visionloop.data.importers.coco import import_coco, is_coco, load_json
from visionloop.data.importers.common import (
    IMAGE_EXTENSIONS,
    NON_IMAGE_EXTENSIONS,
    NON_IMAGE_NAMES,
    LabelFormatError,
    LabelIndex,
    PathResolver,
)
from visionloop.data.importers.ground_truth import REQUIRED_COLUMNS, import_ground_truth
from visionloop.data.importers.label_studio import import_label_studio, is_label_studio
from visionloop.data.importers.yolo import import_yolo
from visionloop.data.sources import DataSource

FORMATS = ("auto", "yolo", "coco", "label-studio", "ground-truth", "none")
YOLO_META_NAMES = ("data.yaml", "dataset.yaml", "classes.txt")

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "NON_IMAGE_EXTENSIONS",
    "NON_IMAGE_NAMES",
    "LabelFormatError",
    "LabelIndex",
    "import_labels",
]


def _ext(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


def detect_format(csv_texts: dict[str, str], jsons: dict[str, Any], txts: dict[str, str]) -> str:
    if any(all(c in text.split("\n", 1)[0] for c in REQUIRED_COLUMNS) for text in csv_texts.values()):
        return "ground-truth"
    if any(is_coco(d) for d in jsons.values()):
        return "coco"
    if any(is_label_studio(d) for d in jsons.values()):
        return "label-studio"
    if any(posixpath.basename(p) != "classes.txt" for p in txts):
        return "yolo"
    return "none"


def import_labels(
    source: DataSource,
    paths: list[str],
    image_paths: list[str],
    fmt: str = "auto",
    class_names: list[str] | None = None,
    group_field: str | None = None,
) -> LabelIndex:
    """Read the labels of ``source``.

    ``paths`` is every file of the listing; ``image_paths`` the image candidates among
    them. Raises ``LabelFormatError`` (naming the file) when a label file is unreadable
    as a whole; problems with single entries are attached to that image's labels.
    """
    if fmt not in FORMATS:
        raise LabelFormatError(f"unknown label format {fmt!r}; choose one of {', '.join(FORMATS)}")

    def texts(ext: tuple[str, ...]) -> dict[str, str]:
        out = {}
        for p in paths:
            if _ext(p) in ext:
                try:
                    out[p] = source.read_bytes(p).decode("utf-8-sig")
                except UnicodeDecodeError as exc:
                    raise LabelFormatError(f"{source.uri_for(p)}: not UTF-8 text: {exc}") from exc
        return out

    want_csv = fmt in ("auto", "ground-truth")
    want_json = fmt in ("auto", "coco", "label-studio")
    csv_texts = texts((".csv",)) if want_csv else {}
    jsons = {p: load_json(t, source.uri_for(p)) for p, t in texts((".json",)).items()} if want_json else {}
    txts = texts((".txt",)) if fmt in ("auto", "yolo") else {}
    if fmt == "auto":
        fmt = detect_format(csv_texts, jsons, txts)
    resolver = PathResolver(image_paths)
    if fmt == "ground-truth":
        gt = {p: t for p, t in csv_texts.items() if all(c in t.split("\n", 1)[0] for c in REQUIRED_COLUMNS)}
        if not gt:
            raise LabelFormatError(f"no Ground Truth CSV (columns {REQUIRED_COLUMNS}) in {source.uri}")
        return import_ground_truth(gt, resolver, class_names, group_field)
    if fmt == "coco":
        coco = {p: d for p, d in jsons.items() if is_coco(d)}
        if not coco:
            raise LabelFormatError(f"no COCO JSON (with 'images' and 'annotations') in {source.uri}")
        return import_coco(coco, resolver, class_names, group_field)
    if fmt == "label-studio":
        ls = {p: d for p, d in jsons.items() if is_label_studio(d)}
        if not ls:
            raise LabelFormatError(f"no Label Studio JSON export (a list of tasks) in {source.uri}")
        return import_label_studio(ls, resolver, class_names, group_field)
    if fmt == "yolo":
        if group_field:
            raise LabelFormatError(
                f"YOLO txt labels have no fields, so group_field={group_field!r} cannot apply; "
                "use group_pattern (a regex on the file name) instead"
            )
        meta_paths = [p for p in paths if posixpath.basename(p) in YOLO_META_NAMES]
        meta = {p: source.read_bytes(p).decode("utf-8-sig") for p in meta_paths}
        label_txts = {p: t for p, t in txts.items() if posixpath.basename(p) not in YOLO_META_NAMES}
        return import_yolo(image_paths, label_txts, class_names, meta)
    return LabelIndex(format="none", class_names=list(class_names or []))
