"""Label Studio JSON export (the full "JSON" format, a list of tasks).

Each task has ``data.image`` (a ``/data/local-files/?d=...`` URL, an upload URL or an
``s3://`` URI) and ``annotations`` whose ``result`` holds ``rectanglelabels`` regions
with ``x, y, width, height`` in percent of the image. The newest annotation that was
not cancelled counts; a task with none stays unlabeled; an empty result means
"labelled, no objects". Boxes come out as normalised xyxy.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from visionloop.data.importers.common import (
    LabelFormatError,
    LabelIndex,
    PathResolver,
    class_index,
    set_declared_split,
)
from visionloop.data.importers.splits import SPLIT_FIELD
from visionloop.data.types import Box, Labels


def is_label_studio(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(isinstance(t, dict) and "data" in t for t in data)


def image_reference(url: str) -> str:
    """The file path inside a Label Studio image URL."""
    parsed = urlparse(url)
    if parsed.path.endswith("/data/local-files/") or "local-files" in parsed.path:
        d = parse_qs(parsed.query).get("d")
        if d:
            return d[0]  # parse_qs has already percent-decoded it
    if parsed.scheme in ("s3", "gs"):
        return parsed.netloc + parsed.path
    return unquote(parsed.path)


def _final_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at", "")), a.get("id", 0)))


def task_labels(task: dict[str, Any], class_names: list[str], where: str) -> Labels:
    annotation = _final_annotation(task)
    if annotation is None:
        return Labels.unlabeled()
    labels = Labels(normalized=True, labeling_job=f"label-studio:{task.get('project', '')}")
    for region in annotation.get("result") or []:
        if region.get("type") != "rectanglelabels":
            continue
        value = region.get("value", {})
        try:
            x, y = float(value["x"]) / 100, float(value["y"]) / 100
            w, h = float(value["width"]) / 100, float(value["height"]) / 100
            name = str(value["rectanglelabels"][0])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            labels.problems.append(f"{where}: region {region.get('id')}: {exc}")
            continue
        if value.get("rotation") and not math.isclose(float(value["rotation"]), 0.0):
            labels.problems.append(f"{where}: region {region.get('id')} is rotated")
            continue
        cid = class_index(name, class_names)
        if cid is None:
            labels.unknown_classes.append(name)
            cid = -1
        labels.boxes.append(Box(class_id=cid, x1=x, y1=y, x2=x + w, y2=y + h))
    return labels


def label_names_in(tasks: list[dict[str, Any]]) -> list[str]:
    names: set[str] = set()
    for task in tasks:
        annotation = _final_annotation(task) or {}
        for region in annotation.get("result") or []:
            names.update(region.get("value", {}).get("rectanglelabels") or [])
    return sorted(names)


def import_label_studio(
    json_files: dict[str, Any],
    resolver: PathResolver,
    class_names: list[str] | None,
    group_field: str | None = None,
) -> LabelIndex:
    all_tasks = [t for data in json_files.values() for t in data]
    names = list(class_names or label_names_in(all_tasks))
    index = LabelIndex(format="label-studio", class_names=names, label_files=set(json_files))
    for path, tasks in sorted(json_files.items()):
        for task in tasks:
            image = (task.get("data") or {}).get("image")
            if not isinstance(image, str):
                raise LabelFormatError(f"{path}: task {task.get('id')} has no data.image")
            where = f"{path}: task {task.get('id')}"
            labels = task_labels(task, names, where)
            if group_field and task["data"].get(group_field) is not None:
                labels.group = str(task["data"][group_field])
            if task["data"].get(SPLIT_FIELD) is not None:
                set_declared_split(labels, task["data"][SPLIT_FIELD], where)
            index.labels[resolver.resolve(image_reference(image))] = labels
    return index
