"""Letterboxing, the same way ultralytics prepares an image for a fixed-size model.

The image is scaled to fit ``height x width`` keeping its aspect ratio, centred, and
padded with grey (114). The tensor is float32 RGB in [0, 1], laid out NCHW
``(1, 3, height, width)``. ``Letterbox.to_original`` maps xyxy pixel boxes of the
model's input back to the original image.

The resize is bilinear without antialiasing and reproduces OpenCV's
``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on uint8 images bit for bit
(half-pixel centres, 11-bit fixed-point weights, the rounding of OpenCV's vectorised
path), which is what ultralytics' ``LetterBox`` calls. Pillow's ``BILINEAR`` filter
antialiases when it shrinks and would change the model's scores by a few percent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

PAD_VALUE = 114
_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
_COEF_SCALE = np.float32(1 << _COEF_BITS)


@dataclass(frozen=True)
class Letterbox:
    scale: float
    pad_x: float
    pad_y: float
    width: int  # original image size
    height: int

    @property
    def resized_size(self) -> tuple[int, int]:
        """(width, height) of the image inside the padding, rounded like ultralytics."""
        return resized_size(self.width, self.height, self.scale)

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes (n, 4) in input pixels -> xyxy float32 in original pixels, clipped.

        Like ultralytics' ``scale_boxes``: each axis is divided by its own gain (the
        rounded resized side over the original side), after removing the padding.
        """
        new_w, new_h = self.resized_size
        gain_x, gain_y = new_w / self.width, new_h / self.height
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / gain_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / gain_y
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.height)
        return out

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes (n, 4) in original pixels -> xyxy float32 in input pixels (inverse of ``to_original``)."""
        new_w, new_h = self.resized_size
        gain_x, gain_y = new_w / self.width, new_h / self.height
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * gain_x + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * gain_y + self.pad_y
        return out


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB. 16-bit greyscale (``I;16*``, and ``I`` holding values
    above 255) is scaled to 8 bits (``value >> 8``): Pillow's ``convert`` clips it at 255,
    which turns a 16-bit photo white."""
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        shift = 8
        if image.mode == "I":
            extrema: tuple[float, float] = image.getextrema()  # type: ignore[assignment]
            shift = 0 if float(extrema[0]) >= 0 and float(extrema[1]) <= 255 else 8
        eight = np.empty((image.height, image.width), dtype=np.uint8)
        for top in range(0, image.height, 256):  # in bands: no full-size 16/32-bit copy
            band = np.asarray(image.crop((0, top, image.width, min(image.height, top + 256))))
            eight[top : top + band.shape[0]] = np.clip(band >> shift, 0, 255)
        return Image.fromarray(eight, "L").convert("RGB")
    return image.convert("RGB")


def resized_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) scaled by ``scale``, Python-rounded, at least 1 pixel each (as ultralytics)."""
    return max(int(round(width * scale)), 1), max(int(round(height * scale)), 1)


def _linear_taps(
    src: int, dst: int, clamp_weight: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and fixed-point weights of OpenCV's INTER_LINEAR along one axis.

    OpenCV clamps the weight to the edge pixel horizontally but only the row index
    vertically (``clamp_weight`` False), and both matter for the last bit.
    """
    scale = src / dst
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    idx = np.floor(pos).astype(np.int64)
    frac = (pos - idx.astype(np.float32)).astype(np.float32)
    if clamp_weight:
        low, high = idx < 0, idx >= src - 1
        frac[low | high] = 0
        idx[low] = 0
        idx[high] = src - 1
    i0, i1 = np.clip(idx, 0, src - 1), np.clip(idx + 1, 0, src - 1)
    w0 = np.rint((np.float32(1) - frac) * _COEF_SCALE).astype(np.int32)
    w1 = np.rint(frac * _COEF_SCALE).astype(np.int32)
    return i0, i1, w0, w1


def resize_bilinear(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (h, w, c) -> uint8 (height, width, c), equal to ``cv2.resize(pixels, (width, height))``.

    Fixed-point like OpenCV: a horizontal pass (weights summing to 2**11) over only the
    source rows the vertical pass reads, then the vertical pass, rounding as OpenCV does.
    Channels stay interleaved (one 2-D gather per tap), and the passes work in place.
    """
    src_h, src_w, channels = pixels.shape
    return _resize(lambda needed: pixels[needed], src_w, src_h, channels, width, height)


def _resize(
    rows_of: Callable[[np.ndarray], np.ndarray],
    src_w: int,
    src_h: int,
    channels: int,
    width: int,
    height: int,
) -> np.ndarray:
    """``resize_bilinear`` reading only the source rows it needs, as ``rows_of(indices)``
    -> uint8 (len(indices), src_w, channels)."""
    x0, x1, a0, a1 = _linear_taps(src_w, width, clamp_weight=True)
    y0, y1, b0, b1 = _linear_taps(src_h, height, clamp_weight=False)
    needed = np.unique(np.concatenate([y0, y1]))
    row_of = np.zeros(src_h, dtype=np.int64)
    row_of[needed] = np.arange(len(needed))
    flat = rows_of(needed).reshape(len(needed), src_w * channels)
    lane = np.arange(channels)
    rows = np.take(flat, (x0[:, None] * channels + lane).ravel(), axis=1).astype(np.int32)
    rows *= np.repeat(a0, channels)
    right = np.take(flat, (x1[:, None] * channels + lane).ravel(), axis=1).astype(np.int32)
    right *= np.repeat(a1, channels)
    rows += right
    del flat, right
    rows >>= 4
    out = np.take(rows, row_of[y0], axis=0)
    out *= b0[:, None]
    out >>= 16
    low = np.take(rows, row_of[y1], axis=0)
    low *= b1[:, None]
    low >>= 16
    out += low
    out += 2
    out >>= 2
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8).reshape(height, width, channels)


def image_rows(image: Image.Image, needed: np.ndarray) -> np.ndarray:
    """uint8 (len(needed), w, 3) RGB rows of an RGB PIL image, read in bands of
    consecutive rows: no full-size array of the image is made."""
    width = image.width
    out = np.empty((len(needed), width, 3), dtype=np.uint8)
    start = 0
    while start < len(needed):
        end = start + 1
        while end < len(needed) and needed[end] == needed[end - 1] + 1 and end - start < 256:
            end += 1
        top = int(needed[start])
        band = image.crop((0, top, width, top + (end - start)))
        out[start:end] = np.asarray(band, dtype=np.uint8)
        start = end
    return out


def letterbox(image: Image.Image, height: int, width: int) -> tuple[np.ndarray, Letterbox]:
    """(tensor (1, 3, height, width) float32 RGB in [0, 1], the letterbox geometry).

    An image at least twice the input size is resized from the rows the resize reads,
    cropped from the PIL image band by band (the same pixels, so the same result): a
    large image is never copied whole into an array."""
    rgb = to_rgb(image)
    w0, h0 = rgb.size
    r = min(height / h0, width / w0)
    new_w, new_h = resized_size(w0, h0, r)
    if h0 >= 2 * new_h:
        pixels = _resize(lambda needed: image_rows(rgb, needed), w0, h0, 3, new_w, new_h)
    else:
        pixels = np.asarray(rgb, dtype=np.uint8)
        if (new_w, new_h) != (w0, h0):
            pixels = resize_bilinear(pixels, new_w, new_h)
    dw, dh = (width - new_w) / 2, (height - new_h) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = pixels
    tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(tensor), Letterbox(r, left, top, w0, h0)
