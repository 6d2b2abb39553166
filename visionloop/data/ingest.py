"""Ingestion: list a source, pick the image candidates, attach labels and groups.

No image is decoded here; that is QA's job. A file is an image candidate when its
extension is an image extension, or when it has an unknown extension and starts with
an image signature (the metal-tags set has JPEGs named ``*.jpg_0``). Every other file
is either a label file or reported as ignored, with the reason.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from pydantic import BaseModel, Field

from visionloop.data.importers import (
    IMAGE_EXTENSIONS,
    NON_IMAGE_EXTENSIONS,
    NON_IMAGE_NAMES,
    import_labels,
)
from visionloop.data.importers.common import file_ext
from visionloop.data.importers.splits import split_from_path
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
    name = path[path.rfind("/") + 1 :]  # posixpath.basename
    if pattern is not None:
        match = pattern.search(name)
        if match:
            return match.groupdict().get("group") or match.group(1 if pattern.groups else 0)
    return posixpath.splitext(path)[0]


def split_listing(source: DataSource, files: list[SourceFile]) -> tuple[list[SourceFile], list[SourceFile]]:
    """(image candidates, other files) of a listing."""
    images, others = [], []
    for f in files:
        ext = file_ext(f.path)
        if ext in IMAGE_EXTENSIONS:
            images.append(f)
        elif (
            ext in NON_IMAGE_EXTENSIONS
            or posixpath.splitext(posixpath.basename(f.path))[0].lower() in NON_IMAGE_NAMES
            or f.size < 8
        ):
            others.append(f)
        else:
            (images if looks_like_image(_head(source, f.path)) else others).append(f)
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


class Scan:
    """A listed source with its labels imported, whose candidates are yet to be made.

    ``candidates()`` yields them one at a time, in the order ``ingest`` lists them, and
    lets go of each image's listing entry and labels as it goes: a caller that streams
    them into QA never holds a candidate per image, only the records QA accepts. Labels
    an importer deferred (Ground Truth rows) are made as their image is handed out.
    """

    def __init__(
        self,
        source: DataSource,
        fmt: str = "auto",
        class_names: list[str] | None = None,
        group_pattern: str | None = None,
        group_field: str | None = None,
    ) -> None:
        files = list(source.list_files())
        images, others = split_listing(source, files)
        index = import_labels(
            source, [f.path for f in files], [f.path for f in images], fmt, class_names, group_field
        )
        del files
        self.source = source
        self.source_uri = source.uri
        self.format = index.format
        self.class_names = index.class_names
        self.ignored = [
            IgnoredFile(path=f.path, reason="not an image and not a label file")
            for f in others
            if f.path not in index.label_files
        ]
        self._other_sizes = {f.path: f.size for f in others}
        self._images = images[::-1]  # popped from the end, in listing order
        self._labels = index.labels
        self._deferred = index.deferred
        self._splits = index.splits
        self._taken = 0  # images handed out so far (the index of the next in listing order)
        self._pattern = re.compile(group_pattern) if group_pattern else None

    def candidates(self) -> Iterator[Candidate]:
        """Every candidate once: the listed images, then label entries naming a file that
        is not an image of the listing (``exists`` False when it is not listed at all)."""
        images, labels, pattern, source = self._images, self._labels, self._pattern, self.source
        # a dict keeps its table when entries are popped: copy it each time it has halved
        shrink_below = len(labels) // 2
        deferred = self._deferred
        while images:
            f = images.pop()
            label = deferred.take(self._taken) if deferred is not None else None
            self._taken += 1
            if label is None:
                label = labels.pop(f.path, None)
                if label is None:
                    label = Labels.unlabeled()
                elif len(labels) < shrink_below:
                    labels = self._labels = dict(labels)
                    shrink_below = len(labels) // 2
            yield Candidate(
                path=f.path,
                source_uri=source.uri_for(f.path),
                size=f.size,
                stamp=f.stamp,
                plain=f.plain,
                labels=label,
                group=label.group or group_of(f.path, pattern),
                split=label.split or self._splits.get(f.path) or split_from_path(f.path),
            )
        if deferred is not None:
            deferred.close()
            self._deferred = None
        for path in sorted(labels):
            label = labels.pop(path)
            yield Candidate(
                path=path,
                source_uri=f"{self.source_uri}/{path}",
                size=self._other_sizes.get(path, 0),
                exists=path in self._other_sizes,
                labels=label,
                group=label.group or group_of(path, pattern),
                split=label.split or split_from_path(path),
            )


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
    ``Scan`` is the streaming form of the same.
    """
    scan = Scan(source, fmt, class_names, group_pattern, group_field)
    return Ingested(
        source_uri=scan.source_uri,
        format=scan.format,
        class_names=scan.class_names,
        candidates=list(scan.candidates()),
        ignored=scan.ignored,
    )
