"""Per-image statistics for monitoring: computed by the edge runtime for every image it
serves (prediction log) and by the monitoring pipeline for the reference data set, with
this one function, so that both sides measure the same way.

All figures are in [0, 1] except the sizes: brightness (mean luma), contrast (luma
standard deviation), sharpness (mean absolute Laplacian of the luma), the mean of each
colour channel and of the HSV saturation, on a copy at most ``THUMB`` pixels on its long
side (cheap, and independent of the camera's resolution); width, height and aspect ratio
of the original image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from edge_runtime.preprocess import to_rgb

THUMB = 256
FEATURES = (
    "brightness",
    "contrast",
    "sharpness",
    "mean_r",
    "mean_g",
    "mean_b",
    "saturation",
    "width",
    "height",
    "aspect",
)


def thumbnail(image: Image.Image) -> Image.Image:
    """The RGB copy, at most ``THUMB`` pixels on its long side, the statistics are computed
    on (small: the prediction log queues it instead of the image)."""
    width, height = image.size
    thumb = to_rgb(image)
    if max(width, height) > THUMB:
        scale = THUMB / max(width, height)
        thumb = thumb.resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR
        )
    elif thumb is image:
        thumb = image.copy()
    return thumb


def image_stats(image: Image.Image) -> dict[str, float]:
    return thumb_stats(thumbnail(image), *image.size)


def thumb_stats(thumb: Image.Image, width: int, height: int) -> dict[str, float]:
    """``image_stats`` of an image of ``width`` x ``height`` from its ``thumbnail``."""
    rgb = np.asarray(thumb, dtype=np.float32) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if luma.shape[0] >= 3 and luma.shape[1] >= 3:
        lap = 4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
        sharpness = float(np.abs(lap).mean())
    else:
        sharpness = 0.0
    cmax, cmin = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(cmax > 0, (cmax - cmin) / np.maximum(cmax, 1e-6), 0.0)
    means = rgb.reshape(-1, 3).mean(axis=0)
    return {
        "brightness": round(float(luma.mean()), 5),
        "contrast": round(float(luma.std()), 5),
        "sharpness": round(sharpness, 5),
        "mean_r": round(float(means[0]), 5),
        "mean_g": round(float(means[1]), 5),
        "mean_b": round(float(means[2]), 5),
        "saturation": round(float(saturation.mean()), 5),
        "width": float(width),
        "height": float(height),
        "aspect": round(width / height, 5) if height else 0.0,
    }
