"""The splits a source declares: a YOLO ``data.yaml``'s ``train``/``val``/``test`` entries,
folders named after a split, one COCO file per split, or a ``split`` column (Ground
Truth CSV) or data key (Label Studio).

Split names are read loosely (``valid``, ``validation`` and ``dev`` are ``val``;
``training`` is ``train``; ``testing`` is ``test``); any other value in a split column
is a problem of that image's labels, so QA quarantines it with the reason.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any

ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
SPLIT_FIELD = "split"  # the CSV column / Label Studio data key / COCO image key
_TOKEN = re.compile(r"[a-z]+")


def normalize_split(value: Any) -> str | None:
    """``train``, ``val`` or ``test`` for a split name or alias; None for an empty
    value; ValueError for anything else."""
    text = str(value).strip().lower() if value is not None else ""
    if not text:
        return None
    if text not in ALIASES:
        raise ValueError(f"unknown split {value!r} (expected one of train, val, test)")
    return ALIASES[text]


def split_from_path(path: str) -> str | None:
    """The split named by a folder of ``path`` (the innermost one): ``images/train/a.jpg``
    and ``valid/images/a.jpg`` both declare one. The file name itself never does."""
    parts = path.split("/")[:-1]
    for part in reversed(parts):
        split = ALIASES.get(part.lower())
        if split is not None:
            return split
    return None


def split_from_file_name(path: str) -> str | None:
    """The split a label file's name declares: ``instances_train2017.json``,
    ``val.json``, ``annotations-test.json``; None when it names none or several."""
    stem = posixpath.splitext(posixpath.basename(path))[0].lower()
    found = {ALIASES[t] for t in _TOKEN.findall(stem) if t in ALIASES}
    return found.pop() if len(found) == 1 else None


def _entries(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []


def yolo_yaml_splits(data: Any, yaml_path: str, paths: Iterable[str]) -> dict[str, str]:
    """Image path -> split, from a YOLO ``data.yaml``'s ``train``/``val``/``test`` entries.

    An entry is a folder (relative to the yaml's ``path`` or to the yaml itself; a
    ``.txt`` list of images is not read, so its images' folders decide); Roboflow's ``../train/images`` (relative to a folder above
    the data set) is matched by its part below the root. A folder claimed by two splits
    (``train: images`` and ``val: images``) declares nothing: the folders decide."""
    if not isinstance(data, dict):
        return {}
    base = posixpath.dirname(yaml_path)
    root = data.get("path")
    if isinstance(root, str) and root and not posixpath.isabs(root) and not root.startswith(".."):
        base = posixpath.normpath(posixpath.join(base, root))
    prefixes: dict[str, set[str]] = {}
    for key in ("train", "val", "test"):
        for entry in _entries(data.get(key)):
            entry = entry.replace("\\", "/").rstrip("/")
            if posixpath.isabs(entry):
                continue  # another machine's folder: only the folder names can tell
            joined = posixpath.normpath(posixpath.join(base, entry))
            while joined.startswith("../"):
                joined = joined[3:]
            prefix = "" if joined in (".", "..") else joined
            prefixes.setdefault(prefix, set()).add(key)
    claims = {p: next(iter(s)) for p, s in prefixes.items() if len(s) == 1}
    if not claims:
        return {}
    out: dict[str, str] = {}
    # the longest matching prefix wins: ``images`` for train and ``images/val`` for val
    ordered = sorted(claims, key=len, reverse=True)
    for path in paths:
        for prefix in ordered:
            if not prefix or path.startswith(prefix + "/") or path == prefix:
                out[path] = claims[prefix]
                break
    return out
