"""What every label importer shares: reading label files, the result type and resolving
file references."""

from __future__ import annotations

import io
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TextIO

from visionloop.data.importers.splits import normalize_split
from visionloop.data.sources import DataSource
from visionloop.data.types import Labels

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# Files that are never image candidates, whatever their content.
NON_IMAGE_EXTENSIONS = frozenset(
    {".txt", ".csv", ".json", ".jsonl", ".yaml", ".yml", ".md", ".xml", ".manifest", ".html"}
)
NON_IMAGE_NAMES = frozenset({"license", "licence", "readme", "notice", "copying"})


class LabelFormatError(ValueError):
    """A label file cannot be read at all; the message names the file and the problem."""


class LabelFiles:
    """Reads the label files of a source as UTF-8 text (a BOM dropped). A file that is
    not UTF-8 raises ``LabelFormatError`` naming it."""

    CHUNK = 1 << 16

    def __init__(self, source: DataSource) -> None:
        self.source = source

    def not_utf8(self, path: str, exc: UnicodeDecodeError) -> LabelFormatError:
        return LabelFormatError(f"{self.source.uri_for(path)}: not UTF-8 text: {exc}")

    @contextmanager
    def open(self, path: str) -> Iterator[TextIO]:
        """A text stream (``newline=""``, as the csv module wants), decoded chunk by
        chunk: a local file is opened, a remote one's bytes are wrapped. Neither holds
        the decoded text of the whole file."""
        local = self.source.local_path(path)
        if local is not None:
            fh: TextIO = open(local, encoding="utf-8-sig", newline="")  # noqa: SIM115
        else:
            data = io.BytesIO(self.source.read_bytes(path))
            fh = io.TextIOWrapper(data, encoding="utf-8-sig", newline="")
        try:
            with fh:
                yield fh
        except UnicodeDecodeError as exc:
            raise self.not_utf8(path, exc) from exc

    def spool(self, path: str) -> BinaryIO:
        """A private copy of ``path`` in a temporary file (deleted when closed), open for
        reading in binary: rows can be read again later, and the same bytes are read
        even if the source file changes meanwhile."""
        tmp = tempfile.TemporaryFile()  # noqa: SIM115 (returned open; the caller closes it)
        try:
            local = self.source.local_path(path)
            if local is not None:
                with open(local, "rb") as src:
                    shutil.copyfileobj(src, tmp, self.CHUNK)
            else:
                tmp.write(self.source.read_bytes(path))
            tmp.seek(0)
        except BaseException:
            tmp.close()
            raise
        return tmp

    def text(self, path: str) -> str:
        try:
            return self.source.read_bytes(path).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self.not_utf8(path, exc) from exc

    def first_line(self, path: str) -> str:
        with self.open(path) as fh:
            return fh.readline()

    def check(self, paths: Iterable[str]) -> None:
        """Raise if any of ``paths`` is not UTF-8 text (read in chunks, nothing kept)."""
        for path in paths:
            with self.open(path) as fh:
                while fh.read(self.CHUNK):
                    pass


class DeferredLabels(Protocol):
    """Labels of listed images that an importer has located but not yet made: made one
    image at a time, when ingestion hands that image to QA."""

    def take(self, image: int) -> Labels | None:
        """The labels of the ``image``-th path of the listing's image candidates, once
        (None when no label entry names it)."""

    def close(self) -> None:
        """Let go of what was kept to make the labels (files, indexes)."""


@dataclass
class LabelIndex:
    """Labels found in a source, keyed by image path relative to the source root.

    ``label_files`` are the files the importer consumed (never image candidates).
    Paths in ``labels`` that are not in the listing become ``missing_file`` items.
    ``splits`` holds the splits a YOLO ``data.yaml`` declares for listed images (the other
    formats declare theirs in each image's ``Labels.split``).
    ``deferred``, when an importer sets it, holds the labels of listed images that are
    not in ``labels`` (the Ground Truth importer keeps only where each row is).
    """

    format: str
    class_names: list[str]
    labels: dict[str, Labels] = field(default_factory=dict)
    label_files: set[str] = field(default_factory=set)
    deferred: DeferredLabels | None = None
    splits: dict[str, str] = field(default_factory=dict)  # image path -> split a data.yaml declares


def file_ext(path: str) -> str:
    """``posixpath.splitext(path)[1].lower()`` in a third of the time: ingestion asks it
    of every listed file."""
    name = path[path.rfind("/") + 1 :]
    dot = name.rfind(".")
    if dot <= 0 or not name[:dot].lstrip("."):  # no dot, or only leading ones
        return ""
    return name[dot:].lower()


def _name(path: str) -> str:
    """The last component of a path."""
    return path[path.rfind("/") + 1 :]


class PathResolver:
    """Maps a file reference from a label file to a path in the listing.

    References come as relative paths, absolute paths from another machine, S3 URIs
    or Label Studio URLs. Tried in order: the exact relative path; the longest suffix
    of path components that names exactly one listed file; the bare file name when it
    is unique. An unresolved reference is returned unchanged (it will be reported as
    a missing file, or as escaping the root when it contains ``..``).

    The index maps each file name to the position(s) of the listed paths that end with
    it; a reference's suffix is compared with those candidates alone. (An index of every
    path suffix would hold several strings per file.)
    """

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        by_name: dict[str, int | list[int]] = {}
        for i, path in enumerate(paths):
            name = _name(path)
            hit = by_name.get(name)
            if hit is None:
                by_name[name] = i
            elif isinstance(hit, int):
                by_name[name] = [hit, i]
            else:
                hit.append(i)
        self.by_name = by_name

    def _named(self, name: str) -> list[int]:
        hit = self.by_name.get(name)
        return [] if hit is None else [hit] if isinstance(hit, int) else hit

    def index(self, path: str) -> int | None:
        """The position of ``path`` in the listing, or None when it is not listed."""
        for i in self._named(_name(path)):
            if self.paths[i] == path:
                return i
        return None

    def locate(self, ref: str) -> tuple[str, int | None]:
        """``resolve(ref)`` and the position of that path in the listing (None when the
        reference names no listed file)."""
        ref = ref.replace("\\", "/")
        parts = [p for p in ref.split("/") if p]
        named = self._named(parts[-1]) if parts else []
        for i in named:
            if self.paths[i] == ref:
                return ref, i
        if ".." in parts:
            return ref, None  # never "fix" a path that tries to leave the root
        if len(named) == 1:  # the only listed file of that name shares the longest suffix
            return self.paths[named[0]], named[0]
        # the longest suffix of ``ref`` that some listed path ends with, and which paths
        # end with it: the match is unique only when a single path shares that suffix
        best, hits = 0, []
        for i in named:
            listed = self.paths[i].split("/")
            k = 1
            while k < len(listed) and k < len(parts) and listed[-k - 1] == parts[-k - 1]:
                k += 1
            if k > best:
                best, hits = k, [i]
            elif k == best:
                hits.append(i)
        if len(hits) == 1:
            return self.paths[hits[0]], hits[0]
        path = posixpath.normpath(ref.lstrip("/"))
        return path, self.index(path)

    def resolve(self, ref: str) -> str:
        return self.locate(ref)[0]


def set_declared_split(labels: Labels, value: object, where: str) -> None:
    """``labels.split`` from a split column or key; an unknown name becomes a problem of
    these labels (QA quarantines the image with it)."""
    try:
        labels.split = normalize_split(value)
    except ValueError as exc:
        labels.problems.append(f"{where}: {exc}")


def class_index(name: str, class_names: list[str]) -> int | None:
    try:
        return class_names.index(name)
    except ValueError:
        return None
