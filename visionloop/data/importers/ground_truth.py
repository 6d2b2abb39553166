"""SageMaker Ground Truth / Feature Store CSV export (the metal-tags ``labels.csv``).

One row per image: ``source_ref`` (an S3 URI; the file name, or its trailing folders,
locate the local file), ``annotations`` (a Python-literal list of
``{'class_id', 'top', 'left', 'height', 'width'}`` in pixels; ``[]`` means checked and
clean) and ``labeling_job``. Boxes come out as xyxy pixels.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
from typing import Any

from visionloop.data.importers.common import LabelFormatError, LabelIndex, PathResolver
from visionloop.data.types import Box, Labels

REQUIRED_COLUMNS = ("source_ref", "annotations")


def parse_annotations(text: str) -> Any:
    """The annotations cell: a Python literal. Most cells are JSON once the quotes are
    swapped, which parses several times faster than ``ast.literal_eval``."""
    if '"' not in text:
        try:
            return json.loads(text.replace("'", '"'))
        except ValueError:
            pass
    return ast.literal_eval(text)


def parse_ground_truth_csv(
    text: str, csv_path: str, resolver: PathResolver, class_names: list[str], group_field: str | None = None
) -> dict[str, Labels]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise LabelFormatError(f"{csv_path}: missing column(s) {missing}; found {reader.fieldnames}")
    out: dict[str, Labels] = {}
    for line_no, row in enumerate(reader, start=2):
        path = resolver.resolve(row["source_ref"].strip())
        labels = Labels(labeling_job=(row.get("labeling_job") or None))
        if group_field:
            labels.group = (row.get(group_field) or "").strip() or None
        try:
            annotations: Any = parse_annotations(row["annotations"] or "[]")
            if not isinstance(annotations, list):
                raise ValueError("annotations is not a list")
        except (ValueError, SyntaxError) as exc:
            labels.problems.append(f"{csv_path}:{line_no}: cannot parse annotations: {exc}")
            out[path] = labels
            continue
        for ann in annotations:
            try:
                cid = int(ann["class_id"])
                left, top = float(ann["left"]), float(ann["top"])
                w, h = float(ann["width"]), float(ann["height"])
            except (KeyError, TypeError, ValueError) as exc:
                labels.problems.append(f"{csv_path}:{line_no}: bad box {ann!r}: {exc}")
                continue
            if not 0 <= cid < len(class_names):
                labels.unknown_classes.append(str(cid))
            labels.boxes.append(Box(class_id=cid, x1=left, y1=top, x2=left + w, y2=top + h))
        if any(math.isnan(v) for b in labels.boxes for v in b.as_tuple()[1:]):
            labels.problems.append(f"{csv_path}:{line_no}: NaN coordinate")
        out[path] = labels
    return out


def import_ground_truth(
    csv_files: dict[str, str],
    resolver: PathResolver,
    class_names: list[str] | None,
    group_field: str | None = None,
) -> LabelIndex:
    if not class_names:
        raise LabelFormatError(
            "Ground Truth CSV labels carry class ids only: set data.class_names in the "
            "config (e.g. class_names: [scratch])"
        )
    index = LabelIndex(format="ground-truth", class_names=list(class_names))
    for path, text in sorted(csv_files.items()):
        index.labels.update(parse_ground_truth_csv(text, path, resolver, index.class_names, group_field))
        index.label_files.add(path)
    return index
