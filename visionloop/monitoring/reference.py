"""Reference statistics of a data set version: the same per-image figures the edge
runtime logs (``edge_runtime.imagestats``), over the version's images, and the
production model's prediction statistics on the images it never trained on."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence

import pandas as pd
from PIL import Image

from edge_runtime.detector import Detection, open_image
from edge_runtime.imagestats import image_stats
from visionloop.data.dataset import ImageDataset

# Per-image figures of what the model answered, as the edge's prediction log allows
# (``edge_runtime.predlog``): the best score (0 with no detection), the number of boxes
# and the mean box area as a share of the image.
PREDICTION_FEATURES = ("max_score", "boxes", "mean_box_area")
HELD_OUT = ("val", "test")


def prediction_figures(
    max_score: float, sizes: Sequence[Sequence[float]], width: float, height: float
) -> dict[str, float]:
    """The prediction features of one image from its detections' scores and sizes."""
    area = width * height
    mean_area = float(sum(w * h for w, h in sizes) / len(sizes) / area) if sizes and area else 0.0
    return {"max_score": float(max_score), "boxes": float(len(sizes)), "mean_box_area": mean_area}


def reference_predictions(
    dataset: ImageDataset,
    predict: Callable[[Image.Image], list[Detection]],
    max_images: int,
    seed: int = 0,
) -> pd.DataFrame:
    """The model's prediction features on the held-out splits (val and test): images it
    never trained on, which is what it sees in the field. On its training images it
    would be more confident than anywhere else, and every window would look drifted."""
    records = [r for r in dataset.records if r.split in HELD_OUT]
    if len(records) > max_images:
        records = random.Random(seed).sample(records, max_images)
    rows = []
    for record in records:
        image = open_image(dataset.read_bytes(record))
        found = predict(image)
        sizes = [(d.box[2] - d.box[0], d.box[3] - d.box[1]) for d in found]
        best = max((d.score for d in found), default=0.0)
        rows.append(prediction_figures(best, sizes, image.width, image.height))
    return pd.DataFrame(rows, columns=list(PREDICTION_FEATURES))


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
