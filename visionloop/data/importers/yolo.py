"""YOLO txt labels: one ``<image stem>.txt`` per image with lines
``class_id cx cy w h`` (normalised to [0, 1]).

The label file of ``images/train/a.jpg`` is ``labels/train/a.txt`` (the ultralytics
layout) or ``a.txt`` beside the image. An empty file means "labelled, no objects"; a
missing file means "unlabeled" (ultralytics would treat it as background: visionloop
does not guess). Class names come from ``data.yaml``/``dataset.yaml`` (``names``) or
``classes.txt`` in the source, unless the config names them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection

import yaml

from visionloop.data.importers.common import LabelFormatError, LabelIndex
from visionloop.data.types import Box, Labels


def label_path_candidates(image_path: str) -> list[str]:
    stem = posixpath.splitext(image_path)[0]
    parts = stem.split("/")
    out = []
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        out.append("/".join(parts[:i] + ["labels"] + parts[i + 1 :]) + ".txt")
    out.append(stem + ".txt")
    return out


def parse_yolo_txt(text: str, txt_path: str, class_names: list[str]) -> Labels:
    labels = Labels(normalized=True)
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            labels.problems.append(f"{txt_path}:{line_no}: expected 5 fields, got {len(fields)}")
            continue
        try:
            cid = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError as exc:
            labels.problems.append(f"{txt_path}:{line_no}: {exc}")
            continue
        if not 0 <= cid < len(class_names):
            labels.unknown_classes.append(str(cid))
        labels.boxes.append(Box(class_id=cid, x1=cx - w / 2, y1=cy - h / 2, x2=cx + w / 2, y2=cy + h / 2))
    return labels


def class_names_from_yaml(text: str, path: str) -> list[str]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise LabelFormatError(f"{path}: not valid YAML: {exc}") from exc
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise LabelFormatError(f"{path}: no 'names' list or mapping")


def import_yolo(
    image_paths: list[str],
    txt_paths: Collection[str],
    read_text: Callable[[str], str],
    class_names: list[str] | None,
    meta_files: dict[str, str],
) -> LabelIndex:
    """``txt_paths`` are the label ``.txt`` files of the source, each read with
    ``read_text`` only when an image claims it (one at a time: the texts are never all
    held); ``meta_files`` the ``data.yaml``/``dataset.yaml``/``classes.txt`` found."""
    names = list(class_names or [])
    if not names:
        for path, text in sorted(meta_files.items()):
            if path.endswith((".yaml", ".yml")):
                names = class_names_from_yaml(text, path)
            else:
                names = [n.strip() for n in text.splitlines() if n.strip()]
            break
    if not names:
        raise LabelFormatError(
            "YOLO labels carry class ids only: add data.yaml (names: [...]) or "
            "classes.txt to the source, or set data.class_names in the config"
        )
    index = LabelIndex(format="yolo", class_names=names, label_files=set(meta_files))
    for image in image_paths:
        for txt in label_path_candidates(image):
            if txt in txt_paths:
                index.labels[image] = parse_yolo_txt(read_text(txt), txt, names)
                index.label_files.add(txt)
                break
    index.label_files.update(txt_paths)
    return index
