"""COCO detection JSON: ``images`` (id, file_name, width, height), ``annotations``
(image_id, category_id, bbox ``[x, y, w, h]`` in pixels) and ``categories``.

An image listed in ``images`` with no annotation is labelled with no objects (that is
what COCO means); an image file that no COCO file lists stays unlabeled. Class names
are the category names in category-id order unless the config names them.
"""

from __future__ import annotations

import json
from typing import Any

from visionloop.data.importers.common import (
    LabelFormatError,
    LabelIndex,
    PathResolver,
    class_index,
    set_declared_split,
)
from visionloop.data.importers.splits import SPLIT_FIELD, split_from_file_name
from visionloop.data.types import Box, Labels


def is_coco(data: Any) -> bool:
    return isinstance(data, dict) and "images" in data and "annotations" in data


def import_coco(
    json_files: dict[str, Any],
    resolver: PathResolver,
    class_names: list[str] | None,
    group_field: str | None = None,
) -> LabelIndex:
    categories: dict[int, str] = {}
    for path, data in sorted(json_files.items()):
        for cat in data.get("categories", []):
            try:
                categories[int(cat["id"])] = str(cat["name"])
            except (KeyError, TypeError, ValueError) as exc:
                raise LabelFormatError(f"{path}: bad category {cat!r}: {exc}") from exc
    names = list(class_names or [categories[k] for k in sorted(categories)])
    index = LabelIndex(format="coco", class_names=names, label_files=set(json_files))
    for path, data in sorted(json_files.items()):
        by_id: dict[Any, Labels] = {}
        file_split = split_from_file_name(path)  # one COCO file per split
        for image in data["images"]:
            try:
                image_path = resolver.resolve(str(image["file_name"]))
                entry = index.labels.setdefault(image_path, Labels())
                by_id[image["id"]] = entry
                if group_field and image.get(group_field) is not None:
                    entry.group = str(image[group_field])
                declared = image.get(SPLIT_FIELD, file_split)
                if declared is not None:
                    set_declared_split(entry, declared, f"{path}: image {image.get('id')}")
            except (KeyError, TypeError) as exc:
                raise LabelFormatError(f"{path}: bad image entry {image!r}: {exc}") from exc
        for ann in data["annotations"]:
            labels = by_id.get(ann.get("image_id"))
            if labels is None:
                raise LabelFormatError(
                    f"{path}: annotation {ann.get('id')} names image_id "
                    f"{ann.get('image_id')!r}, which is not in 'images'"
                )
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
                cat_name = categories.get(int(ann["category_id"]), str(ann["category_id"]))
            except (KeyError, TypeError, ValueError) as exc:
                labels.problems.append(f"{path}: annotation {ann.get('id')}: {exc}")
                continue
            cid = class_index(cat_name, names)
            if cid is None:
                labels.unknown_classes.append(cat_name)
                cid = -1
            labels.boxes.append(Box(class_id=cid, x1=x, y1=y, x2=x + w, y2=y + h))
    return index


def load_json(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelFormatError(f"{path}: not valid JSON: {exc}") from exc
