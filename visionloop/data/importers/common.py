"""What every label importer shares: the result type and resolving file references."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from dataclasses import dataclass, field

from visionloop.data.types import Labels

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# Files that are never image candidates, whatever their content.
NON_IMAGE_EXTENSIONS = frozenset(
    {".txt", ".csv", ".json", ".jsonl", ".yaml", ".yml", ".md", ".xml", ".manifest", ".html"}
)
NON_IMAGE_NAMES = frozenset({"license", "licence", "readme", "notice", "copying"})


class LabelFormatError(ValueError):
    """A label file cannot be read at all; the message names the file and the problem."""


@dataclass
class LabelIndex:
    """Labels found in a source, keyed by image path relative to the source root.

    ``label_files`` are the files the importer consumed (never image candidates).
    Paths in ``labels`` that are not in the listing become ``missing_file`` items.
    """

    format: str
    class_names: list[str]
    labels: dict[str, Labels] = field(default_factory=dict)
    label_files: set[str] = field(default_factory=set)


class PathResolver:
    """Maps a file reference from a label file to a path in the listing.

    References come as relative paths, absolute paths from another machine, S3 URIs
    or Label Studio URLs. Tried in order: the exact relative path; the longest suffix
    of path components that names exactly one listed file; the bare file name when it
    is unique. An unresolved reference is returned unchanged (it will be reported as
    a missing file, or as escaping the root when it contains ``..``).
    """

    def __init__(self, paths: list[str]) -> None:
        self.paths = set(paths)
        self.by_suffix: dict[str, list[str]] = defaultdict(list)
        for path in paths:
            parts = path.split("/")
            for i in range(len(parts)):
                self.by_suffix["/".join(parts[i:])].append(path)

    def resolve(self, ref: str) -> str:
        ref = ref.replace("\\", "/")
        if ref in self.paths:
            return ref
        if ".." in ref.split("/"):
            return ref  # never "fix" a path that tries to leave the root
        parts = [p for p in ref.split("/") if p]
        for i in range(len(parts)):
            hits = self.by_suffix.get("/".join(parts[i:]), [])
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1 and i == len(parts) - 1:
                break
        return posixpath.normpath(ref.lstrip("/"))


def class_index(name: str, class_names: list[str]) -> int | None:
    try:
        return class_names.index(name)
    except ValueError:
        return None
