"""Reference statistics of a data set version: the same per-image figures the edge
runtime logs (``edge_runtime.imagestats``), over the version's images."""

from __future__ import annotations

import io
import random

import pandas as pd
from PIL import Image

from edge_runtime.imagestats import image_stats
from visionloop.data.dataset import ImageDataset


def reference_table(dataset: ImageDataset, max_images: int, seed: int = 0) -> pd.DataFrame:
    """One row per image (a seeded sample of at most ``max_images``), with its split."""
    records = dataset.records
    if len(records) > max_images:
        records = random.Random(seed).sample(records, max_images)
    rows = []
    for record in records:
        with Image.open(io.BytesIO(dataset.read_bytes(record))) as image:
            rows.append({**image_stats(image), "split": record.split or "none"})
    return pd.DataFrame(rows)


def table_from_images(images: list[bytes]) -> pd.DataFrame:
    rows = []
    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            rows.append(image_stats(image))
    return pd.DataFrame(rows)
