"""A temporary YOLO-layout copy of a data set version for one training job."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visionloop.data.dataset import ImageDataset
from visionloop.data.export import export_yolo


@contextmanager
def yolo_workspace(dataset: ImageDataset, prefix: str = "visionloop-") -> Iterator[tuple[Path, Path]]:
    """(data.yaml, work dir): the data set exported under a temporary folder that also
    holds the ultralytics run; everything is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        yield export_yolo(dataset, work / "data"), work
