"""SageMaker Ground Truth / Feature Store CSV export (the metal-tags ``labels.csv``).

One row per image: ``source_ref`` (an S3 URI; the file name, or its trailing folders,
locate the local file), ``annotations`` (a Python-literal list of
``{'class_id', 'top', 'left', 'height', 'width'}`` in pixels; ``[]`` means checked and
clean) and ``labeling_job``. Boxes come out as xyxy pixels.

Memory: a CSV is copied to a private temporary file and read row by row. A row that
names a listed image is only located (its byte range and line, in arrays: no object
per image); its labels are made when ingestion hands that image to QA
(``GroundTruthRows.take``), so the labels of every image are never held at once, and
what QA keeps of them (the boxes) is made next to the record that keeps it. Rows that
name no listed image are parsed at once (they become ``missing_file`` items).
"""

from __future__ import annotations

import ast
import csv
import json
import math
import weakref
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from visionloop.data.importers.common import (
    LabelFiles,
    LabelFormatError,
    LabelIndex,
    PathResolver,
    set_declared_split,
)
from visionloop.data.importers.splits import SPLIT_FIELD
from visionloop.data.types import Labels, make_box, make_labels

REQUIRED_COLUMNS = ("source_ref", "annotations")


def is_ground_truth_header(line: str) -> bool:
    """Whether the first line of a CSV names the columns a Ground Truth export has."""
    return all(c in line for c in REQUIRED_COLUMNS)


def parse_annotations(text: str) -> Any:
    """The annotations cell: a Python literal. Most cells are JSON once the quotes are
    swapped, which parses several times faster than ``ast.literal_eval``."""
    if '"' not in text:
        try:
            return json.loads(text.replace("'", '"'))
        except ValueError:
            pass
    return ast.literal_eval(text)


@dataclass(frozen=True)
class Columns:
    """Where the columns of a Ground Truth CSV are (the last of a repeated name counts,
    as in ``csv.DictReader``)."""

    csv_path: str
    width: int
    source_ref: int
    annotations: int
    labeling_job: int | None
    group: int | None
    split: int | None = None  # a ``split`` column: the split the source declares

    @classmethod
    def of(cls, header: list[str] | None, csv_path: str, group_field: str | None) -> Columns:
        missing = [c for c in REQUIRED_COLUMNS if c not in (header or [])]
        if header is None or missing:
            raise LabelFormatError(f"{csv_path}: missing column(s) {missing}; found {header}")
        at = {name: i for i, name in enumerate(header)}
        return cls(
            csv_path,
            len(header),
            at["source_ref"],
            at["annotations"],
            at.get("labeling_job"),
            at.get(group_field) if group_field else None,
            at.get(SPLIT_FIELD),
        )


def row_labels(
    row: list[str],
    line_no: int,
    cols: Columns,
    class_names: list[str],
    group_field: str | None,
    shared: dict[str, str],
) -> Labels:
    """The labels of one data row. A malformed cell becomes a problem of these labels,
    naming the file and the line. ``shared`` holds one string per labeling job and group
    (so that rows share them)."""
    n = len(row)
    job = row[cols.labeling_job] if cols.labeling_job is not None and cols.labeling_job < n else None
    group = row[cols.group].strip() if group_field and cols.group is not None and cols.group < n else ""
    labels = make_labels(
        shared.setdefault(job, job) if job else None, shared.setdefault(group, group) if group else None
    )
    if cols.split is not None and cols.split < n and row[cols.split].strip():
        set_declared_split(labels, row[cols.split], f"{cols.csv_path}:{line_no}")
    text = (row[cols.annotations] if cols.annotations < n else "") or "[]"
    if text == "[]":  # checked, nothing found: a third of the rows
        return labels
    where = f"{cols.csv_path}:{line_no}"
    try:
        annotations: Any = parse_annotations(text)
        if not isinstance(annotations, list):
            raise ValueError("annotations is not a list")
    except (ValueError, SyntaxError) as exc:
        labels.problems.append(f"{where}: cannot parse annotations: {exc}")
        return labels
    boxes, n_classes, isnan, nan = labels.boxes, len(class_names), math.isnan, False
    for ann in annotations:
        try:
            cid = int(ann["class_id"])
            left, top = float(ann["left"]), float(ann["top"])
            right, bottom = left + float(ann["width"]), top + float(ann["height"])
        except (KeyError, TypeError, ValueError) as exc:
            labels.problems.append(f"{where}: bad box {ann!r}: {exc}")
            continue
        if not 0 <= cid < n_classes:
            labels.unknown_classes.append(str(cid))
        nan = nan or isnan(left) or isnan(top) or isnan(right) or isnan(bottom)
        boxes.append(make_box(cid, left, top, right, bottom))
    if nan:
        labels.problems.append(f"{where}: NaN coordinate")
    return labels


class _Lines:
    """The lines of a UTF-8 file opened in binary, decoded one by one (a leading BOM
    dropped), with the byte offset reached. Lines end at ``\\n``, ``\\r\\n`` or ``\\r``, as
    in a text file opened with ``newline=""``."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.pos = fh, 0

    def __iter__(self) -> Iterator[str]:
        for raw in self.fh:
            for part in raw.splitlines(keepends=True) if b"\r" in raw else (raw,):
                text = part.decode("utf-8")
                if self.pos == 0 and text.startswith("\ufeff"):
                    text = text[1:]
                self.pos += len(part)
                yield text


def _close_all(files: list[tuple[Columns, BinaryIO]]) -> None:
    for _, fh in files:
        fh.close()


class GroundTruthRows:
    """Where the row of each listed image is (file, byte range, line number: 20 bytes
    per image in four arrays), and its labels made on demand."""

    def __init__(self, n_images: int, class_names: list[str], group_field: str | None) -> None:
        self.class_names, self.group_field = class_names, group_field
        self._files: list[tuple[Columns, BinaryIO]] = []
        self._start = array("q", [-1]) * n_images
        self._size = array("i", [0]) * n_images
        self._line = array("i", [0]) * n_images
        self._file = array("i", [0]) * n_images
        self.shared: dict[str, str] = {}
        self._close = weakref.finalize(self, _close_all, self._files)

    def add_file(self, cols: Columns, fh: BinaryIO) -> int:
        self._files.append((cols, fh))
        return len(self._files) - 1

    def put(self, image: int, file_no: int, start: int, size: int, line_no: int) -> None:
        """The row of listed image ``image`` (a later row for it replaces an earlier one)."""
        self._start[image], self._size[image] = start, size
        self._line[image], self._file[image] = line_no, file_no

    def take(self, image: int) -> Labels | None:
        start = self._start[image]
        if start < 0:
            return None
        self._start[image] = -1
        cols, fh = self._files[self._file[image]]
        fh.seek(start)
        data = fh.read(self._size[image])
        # split and decoded as when the file was first read: the same bytes, the same row
        row = next(csv.reader([part.decode("utf-8") for part in data.splitlines(keepends=True)]))
        return row_labels(row, self._line[image], cols, self.class_names, self.group_field, self.shared)

    def close(self) -> None:
        self._close()
        self._start = self._size = self._line = self._file = array("i")


def _read_csv(
    fh: BinaryIO,
    csv_path: str,
    resolver: PathResolver,
    rows: GroundTruthRows,
    labels: dict[str, Labels],
) -> None:
    lines = _Lines(fh)
    reader = csv.reader(lines)
    try:
        cols = Columns.of(next(reader, None), csv_path, rows.group_field)
        file_no = rows.add_file(cols, fh)
        line_no, start = 1, lines.pos
        for row in reader:
            end = lines.pos
            if row:  # a blank line is skipped (and not counted), as csv.DictReader does
                line_no += 1
                if cols.source_ref >= len(row):
                    raise LabelFormatError(
                        f"{csv_path}:{line_no}: no source_ref (the row has {len(row)} of "
                        f"{cols.width} columns)"
                    )
                path, image = resolver.locate(row[cols.source_ref].strip())
                if image is None:  # no such image: parsed now, reported as missing by QA
                    labels[path] = row_labels(
                        row, line_no, cols, rows.class_names, rows.group_field, rows.shared
                    )
                else:
                    rows.put(image, file_no, start, end - start, line_no)
            start = end
    except csv.Error as exc:
        raise LabelFormatError(f"{csv_path}:{reader.line_num}: not a readable CSV: {exc}") from exc


def import_ground_truth(
    csv_paths: list[str],
    files: LabelFiles,
    resolver: PathResolver,
    class_names: list[str] | None,
    group_field: str | None = None,
) -> LabelIndex:
    """The labels of the Ground Truth CSVs ``csv_paths``, read in path order (a later row
    for an image replaces an earlier one). Those of listed images are left in
    ``deferred``; the rest are in ``labels``."""
    if not class_names:
        raise LabelFormatError(
            "Ground Truth CSV labels carry class ids only: set data.class_names in the "
            "config (e.g. class_names: [scratch])"
        )
    index = LabelIndex(format="ground-truth", class_names=list(class_names))
    rows = GroundTruthRows(len(resolver.paths), index.class_names, group_field)
    try:
        for path in sorted(csv_paths):
            fh = files.spool(path)
            try:
                _read_csv(fh, path, resolver, rows, index.labels)
            except BaseException:
                fh.close()
                raise
            index.label_files.add(path)
    except UnicodeDecodeError as exc:
        rows.close()
        raise files.not_utf8(path, exc) from exc
    except BaseException:
        rows.close()
        raise
    index.deferred = rows
    return index
