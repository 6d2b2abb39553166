"""Label importers: YOLO txt, COCO JSON, Label Studio JSON export, Ground Truth CSV.

``import_labels`` picks the importer named by ``fmt`` (or detects it with ``auto``),
reads the label files of a source and returns a ``LabelIndex``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

import yaml

from visionloop.data.importers.coco import import_coco, is_coco, load_json
from visionloop.data.importers.common import (
    IMAGE_EXTENSIONS,
    NON_IMAGE_EXTENSIONS,
    NON_IMAGE_NAMES,
    LabelFiles,
    LabelFormatError,
    LabelIndex,
    PathResolver,
    file_ext,
)
from visionloop.data.importers.ground_truth import (
    REQUIRED_COLUMNS,
    import_ground_truth,
    is_ground_truth_header,
)
from visionloop.data.importers.label_studio import import_label_studio, is_label_studio
from visionloop.data.importers.splits import yolo_yaml_splits
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


def detect_format(csv_heads: dict[str, str], jsons: dict[str, Any], txt_paths: Iterable[str]) -> str:
    """The format of a source from the first line of each CSV, the parsed JSON files and
    the paths of the ``.txt`` files."""
    if any(is_ground_truth_header(head) for head in csv_heads.values()):
        return "ground-truth"
    if any(is_coco(d) for d in jsons.values()):
        return "coco"
    if any(is_label_studio(d) for d in jsons.values()):
        return "label-studio"
    if any(posixpath.basename(p) != "classes.txt" for p in txt_paths):
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

    Label files are read one at a time, and none is held as a whole text: a CSV is read
    row by row and YOLO txts one by one. The labels of listed images may be left in
    ``LabelIndex.deferred`` (Ground Truth: made one at a time as ingestion hands each
    image to QA). Every ``.csv`` (and, for ``auto`` and ``yolo``, every ``.txt``) is
    still checked to be UTF-8, whether or not the chosen importer reads it.
    """
    if fmt not in FORMATS:
        raise LabelFormatError(f"unknown label format {fmt!r}; choose one of {', '.join(FORMATS)}")
    files = LabelFiles(source)
    want_csv = fmt in ("auto", "ground-truth")
    want_json = fmt in ("auto", "coco", "label-studio")
    want_txt = fmt in ("auto", "yolo")
    csv_heads = {p: files.first_line(p) for p in paths if want_csv and file_ext(p) == ".csv"}
    jsons = {
        p: load_json(files.text(p), source.uri_for(p)) for p in paths if want_json and file_ext(p) == ".json"
    }
    txt_paths = [p for p in paths if want_txt and file_ext(p) == ".txt"]
    if fmt == "auto":
        fmt = detect_format(csv_heads, jsons, txt_paths)
    gt = sorted(p for p, head in csv_heads.items() if is_ground_truth_header(head))
    # the files no importer reads are checked as they were when every text was read
    files.check(p for p in csv_heads if fmt != "ground-truth" or p not in gt)
    if fmt != "yolo":
        files.check(txt_paths)
    if fmt == "ground-truth":
        if not gt:
            raise LabelFormatError(f"no Ground Truth CSV (columns {REQUIRED_COLUMNS}) in {source.uri}")
        return import_ground_truth(gt, files, PathResolver(image_paths), class_names, group_field)
    if fmt == "coco":
        coco = {p: d for p, d in jsons.items() if is_coco(d)}
        if not coco:
            raise LabelFormatError(f"no COCO JSON (with 'images' and 'annotations') in {source.uri}")
        return import_coco(coco, PathResolver(image_paths), class_names, group_field)
    if fmt == "label-studio":
        ls = {p: d for p, d in jsons.items() if is_label_studio(d)}
        if not ls:
            raise LabelFormatError(f"no Label Studio JSON export (a list of tasks) in {source.uri}")
        return import_label_studio(ls, PathResolver(image_paths), class_names, group_field)
    if fmt == "yolo":
        if group_field:
            raise LabelFormatError(
                f"YOLO txt labels have no fields, so group_field={group_field!r} cannot apply; "
                "use group_pattern (a regex on the file name) instead"
            )
        meta = {p: files.text(p) for p in paths if posixpath.basename(p) in YOLO_META_NAMES}
        label_txts = {p for p in txt_paths if posixpath.basename(p) not in YOLO_META_NAMES}
        read: set[str] = set()

        def read_label(path: str) -> str:
            read.add(path)
            return files.text(path)

        index = import_yolo(image_paths, label_txts, read_label, class_names, meta)
        files.check(p for p in label_txts if p not in read)
        for path, text in sorted(meta.items()):
            if path.endswith((".yaml", ".yml")):
                try:
                    declared = yaml.safe_load(text)
                except yaml.YAMLError as exc:
                    raise LabelFormatError(f"{source.uri_for(path)}: not valid YAML: {exc}") from exc
                index.splits = yolo_yaml_splits(declared, path, image_paths)
                break
        return index
    return LabelIndex(format="none", class_names=list(class_names or []))
