"""Ingestion: list a source, pick the image candidates, attach labels and groups.

No image is decoded here; that is QA's job. A file is an image candidate when its
extension is an image extension, or when it has an unknown extension and starts with
an image signature (the metal-tags set has JPEGs named ``*.jpg_0``). Every other file
is either a label file or reported as ignored, with the reason.
"""

from __future__ import annotations

import posixpath
import re

from pydantic import BaseModel, Field

from visionloop.data.importers import (
    IMAGE_EXTENSIONS,
    NON_IMAGE_EXTENSIONS,
    NON_IMAGE_NAMES,
    import_labels,
)
from visionloop.data.sources import DataSource, SourceFile
from visionloop.data.types import Candidate, IgnoredFile, Labels

SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_image(head: bytes) -> bool:
    return head.startswith(SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


class Ingested(BaseModel):
    """What ingestion found: the candidates for QA and the files it ignored."""

    source_uri: str
    format: str
    class_names: list[str]
    candidates: list[Candidate] = Field(default_factory=list)
    ignored: list[IgnoredFile] = Field(default_factory=list)


def group_of(path: str, pattern: re.Pattern[str] | None) -> str:
    """The capture group of an image: the regex's ``group`` (or first) group matched
    against the file name, else the path without its extension (a group of one)."""
    name = posixpath.basename(path)
    if pattern is not None:
        match = pattern.search(name)
        if match:
            return match.groupdict().get("group") or match.group(1 if pattern.groups else 0)
    return posixpath.splitext(path)[0]


def split_listing(source: DataSource, files: list[SourceFile]) -> tuple[list[str], list[str]]:
    """(image candidates, other files) of a listing."""
    images, others = [], []
    for f in files:
        ext = posixpath.splitext(f.path)[1].lower()
        stem = posixpath.splitext(posixpath.basename(f.path))[0].lower()
        if ext in IMAGE_EXTENSIONS:
            images.append(f.path)
        elif ext in NON_IMAGE_EXTENSIONS or stem in NON_IMAGE_NAMES or f.size < 8:
            others.append(f.path)
        else:
            head = _head(source, f.path)
            (images if looks_like_image(head) else others).append(f.path)
    return images, others


def _head(source: DataSource, path: str) -> bytes:
    local = source.local_path(path)
    try:
        if local is not None:
            with open(local, "rb") as fh:
                return fh.read(16)
        return source.read_bytes(path)[:16]
    except OSError:
        return b""


def ingest(
    source: DataSource,
    fmt: str = "auto",
    class_names: list[str] | None = None,
    group_pattern: str | None = None,
    group_field: str | None = None,
) -> Ingested:
    """List ``source``, import its labels and return the candidates for QA.

    Label entries whose image is not in the listing become candidates with
    ``exists=False`` so that QA reports them as missing instead of losing them.
    """
    files = list(source.list_files())
    sizes = {f.path: f.size for f in files}
    stamps = {f.path: f.stamp for f in files}
    images, others = split_listing(source, files)
    index = import_labels(source, [f.path for f in files], images, fmt, class_names, group_field)
    pattern = re.compile(group_pattern) if group_pattern else None
    out = Ingested(source_uri=source.uri, format=index.format, class_names=index.class_names)
    for path in images:
        labels = index.labels.get(path, Labels.unlabeled())
        out.candidates.append(
            Candidate(
                path=path,
                source_uri=source.uri_for(path),
                size=sizes[path],
                stamp=stamps[path],
                labels=labels,
                group=labels.group or group_of(path, pattern),
            )
        )
    for path in sorted(set(index.labels) - set(images)):
        labels = index.labels[path]
        out.candidates.append(
            Candidate(
                path=path,
                source_uri=f"{source.uri}/{path}",
                size=sizes.get(path, 0),
                exists=path in sizes,
                labels=labels,
                group=labels.group or group_of(path, pattern),
            )
        )
    for path in others:
        if path not in index.label_files:
            out.ignored.append(IgnoredFile(path=path, reason="not an image and not a label file"))
    return out
