"""Request images decoded within a memory budget.

The pixel cap (``detector.MAX_PIXELS``) bounds what an image may be; it does not bound
what decoding it costs, which is what a few clients sending hostile images could use to
take a device's memory (a 131 KB PNG of 6300x6300 decodes to 119 MB, then is copied to
RGB and to an array). Here every image is costed from its header before it is decoded
(``working_set``: the decoded bytes by mode, an RGB copy unless already RGB, the 8-bit
copy of a 16-bit image, a fixed allowance):

* A JPEG over ``max_image_bytes`` is decoded smaller with Pillow's ``draft`` (the
  decoder's 1/2, 1/4, 1/8 scaling: no full-size buffer exists at all); the answer's
  boxes are scaled back to the image as sent.
* Any other image over ``max_image_bytes`` is refused (HTTP 413) with its cost.
* Every decode reserves its cost from one ``MemoryBudget`` shared by all requests (and
  shadow mode); a request waits until the images in flight leave room, so the memory
  held by decoding is bounded by the budget whatever ``--max-inflight`` says.

EXIF orientation is applied as before, without the extra full-size copy Pillow makes
when there is nothing to rotate.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageOps

from edge_runtime.detector import MAX_PIXELS, Detection, ImageTooLarge

DEFAULT_MAX_IMAGE_BYTES = 96 * 2**20
DEFAULT_MEMORY_BUDGET = 128 * 2**20
BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3}
BYTES_PER_PIXEL |= {"HSV": 3, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
EXIF_ORIENTATION = 0x0112


class ImageOverBudget(ImageTooLarge):
    """An image whose decoding would cost more memory than one image may take."""


def working_set(mode: str, width: int, height: int) -> int:
    """Bytes decoding and preparing one image of this mode and size holds at its peak:
    the decoded image, its RGB conversion (unless already RGB; the letterbox then reads
    only the rows it needs, ``preprocess.letterbox``), the 8-bit copy of a 16-bit image,
    and a fixed allowance for the decoder's and the resize's buffers."""
    pixels = width * height
    decoded = pixels * BYTES_PER_PIXEL.get(mode, 4)
    rgb_copy = 0 if mode == "RGB" else pixels * 3
    eight_bit = pixels if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N") else 0
    return decoded + rgb_copy + eight_bit + 8 * 2**20


class MemoryBudget:
    """Bytes shared by the images being decoded and run; ``reserve`` waits for room."""

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError(f"the memory budget must be positive, got {total}")
        self.total = total
        self.used = 0
        self.waited = 0
        self._cond = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        if nbytes > self.total:
            raise ImageOverBudget(
                f"decoding it needs {nbytes / 2**20:.0f} MiB, over the {self.total / 2**20:.0f} MiB "
                "memory budget for images in flight"
            )
        with self._cond:
            if self.used + nbytes > self.total:
                self.waited += 1
            while self.used + nbytes > self.total:
                self._cond.wait()
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()


@dataclass(frozen=True)
class Decoded:
    """A decoded image; ``scale`` is (sent size / decoded size), above 1 after a draft."""

    image: Image.Image
    size: tuple[int, int]  # (width, height) of the image as sent, EXIF orientation applied
    scale: float
    format: str | None
    cost: int

    def to_sent(self, detections: list[Detection]) -> list[Detection]:
        """Detections in pixels of the decoded image -> pixels of the image as sent."""
        if self.scale == 1.0:
            return detections
        w, h = self.size
        return [
            Detection(
                d.class_id,
                d.class_name,
                d.score,
                (
                    min(w, d.box[0] * self.scale),
                    min(h, d.box[1] * self.scale),
                    min(w, d.box[2] * self.scale),
                    min(h, d.box[3] * self.scale),
                ),
            )
            for d in detections
        ]


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block: no orientation
        return 1
    return value if value in (1, 2, 3, 4, 5, 6, 7, 8) else 1


@contextmanager
def decode(
    data: bytes,
    budget: MemoryBudget,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[Decoded]:
    """Decode ``data`` inside a reservation of its working set (module docstring); the
    reservation ends with the block. Raises ImageTooLarge / ImageOverBudget, or Pillow's
    errors for bytes that are not an image."""
    img = Image.open(io.BytesIO(data))
    try:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"image of {width}x{height} pixels is larger than the {max_pixels:,} allowed")
        cost = working_set(img.mode, width, height)
        if cost > max_image_bytes and img.format == "JPEG":
            for factor in (2, 4, 8):
                if cost // (factor * factor) <= max_image_bytes or factor == 8:
                    img.draft("RGB", (max(1, width // factor), max(1, height // factor)))
                    break
            cost = working_set(img.mode, *img.size)
        if cost > max_image_bytes:
            raise ImageOverBudget(
                f"image of {width}x{height} pixels ({img.mode}) decodes to {cost / 2**20:.0f} MiB, over the "
                f"{max_image_bytes / 2**20:.0f} MiB one image may take; send a smaller image"
            )
        with budget.reserve(cost):
            img.load()
            orientation = _orientation(img)
            # Pillow's exif_transpose returns a full-size copy even with nothing to rotate
            oriented = (ImageOps.exif_transpose(img) or img) if orientation != 1 else img
            sent = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
            scale = sent[0] / oriented.size[0] if oriented.size[0] else 1.0
            yield Decoded(oriented, sent, scale, img.format, cost)
    finally:
        img.close()
