"""False positives and false negatives of a detector on labelled images, and the
images drawn with them: plain functions (numpy and Pillow, no ZenML).

Boxes everywhere are xyxy (x1, y1, x2, y2) in pixels of the stored image, x to the
right and y down from the top-left corner. Matching is per class: predictions, best
score first, each take the unmatched ground-truth box of their class with the highest
IoU, if that IoU is at least ``iou`` (0.5 by default); what is left over is a false
positive (a prediction) or a false negative (a ground-truth box).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont, ImageOps

Xyxy = tuple[float, float, float, float]

TP_COLOUR = (40, 170, 70)
FP_COLOUR = (225, 50, 40)
FN_COLOUR = (250, 170, 0)


@dataclass(frozen=True)
class Truth:
    """A ground-truth box: class id and xyxy pixels."""

    class_id: int
    box: Xyxy


@dataclass(frozen=True)
class Predicted:
    """A prediction above the serving threshold: class id, score and xyxy pixels."""

    class_id: int
    score: float
    box: Xyxy


@dataclass
class Matching:
    """What matched (prediction, truth, IoU), and the false positives and negatives."""

    matched: list[tuple[Predicted, Truth, float]] = field(default_factory=list)
    false_positives: list[Predicted] = field(default_factory=list)
    false_negatives: list[Truth] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.false_positives and not self.false_negatives


def iou(a: Xyxy, b: Xyxy) -> float:
    """Intersection over union of two xyxy boxes (0 when either has no area)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(predictions: Sequence[Predicted], truths: Sequence[Truth], min_iou: float = 0.5) -> Matching:
    """Greedy per-class matching, best score first (the module docstring)."""
    out = Matching()
    free = list(range(len(truths)))
    for p in sorted(predictions, key=lambda p: -p.score):
        best, best_iou = None, min_iou
        for i in free:
            t = truths[i]
            if t.class_id != p.class_id:
                continue
            overlap = iou(p.box, t.box)
            if overlap >= best_iou:
                best, best_iou = i, overlap
        if best is None:
            out.false_positives.append(p)
        else:
            free.remove(best)
            out.matched.append((p, truths[best], best_iou))
    out.false_negatives = [truths[i] for i in free]
    return out


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (nothing is read from the system)."""
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ImportError):  # Pillow built without FreeType: the bitmap font
        return ImageFont.load_default()


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    colour: tuple[int, int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=colour)
    draw.text(xy, text, fill=(255, 255, 255), font=font)


def draw_boxes(
    image: bytes | Image.Image,
    boxes: Iterable[tuple[Xyxy, str, tuple[int, int, int]]],
    max_side: int = 640,
    min_side: int = 320,
) -> bytes:
    """The image (encoded bytes or PIL; EXIF orientation applied) with each (xyxy box,
    caption, RGB colour) drawn; scaled so that its longer side is between ``min_side``
    (small images are enlarged, so boxes and captions stay legible) and ``max_side``
    pixels; JPEG bytes."""
    if isinstance(image, Image.Image):
        img = image.convert("RGB")
    else:
        with Image.open(io.BytesIO(image)) as opened:
            img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
    longest = max(img.size)
    scale = max_side / longest if longest > max_side else min_side / longest if longest < min_side else 1.0
    if scale != 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 220))
    font = _font(max(11, round(max(img.size) / 36)))
    for box, caption, colour in boxes:
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        if caption:
            height = draw.textbbox((0, 0), caption, font=font)[3]
            _label(draw, (x1 + 2, max(0.0, y1 - height - 3)), caption, colour, font)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def draw_matching(image: bytes, m: Matching, class_name: Callable[[int], str]) -> bytes:
    """An image with its matches (green), false positives (red, with score) and false
    negatives (amber) drawn."""
    boxes: list[tuple[Xyxy, str, tuple[int, int, int]]] = []
    boxes += [(p.box, "", TP_COLOUR) for p, _, _ in m.matched]
    boxes += [(t.box, f"FN {class_name(t.class_id)}", FN_COLOUR) for t in m.false_negatives]
    boxes += [(p.box, f"FP {class_name(p.class_id)} {p.score:.2f}", FP_COLOUR) for p in m.false_positives]
    return draw_boxes(image, boxes)


@dataclass(frozen=True)
class GalleryItem:
    """One test image with a false positive or negative: its source file name, the
    counts, and the drawn image (JPEG)."""

    path: str
    true_positives: int
    false_positives: int
    false_negatives: int
    jpeg: bytes


@dataclass(frozen=True)
class Gallery:
    """The images with errors (worst first) and the totals over the whole split."""

    items: list[GalleryItem]
    images: int
    true_positives: int
    false_positives: int
    false_negatives: int


def build_gallery(
    samples: Iterable[tuple[str, bytes, Sequence[Truth]]],
    predict: Callable[[bytes], Sequence[Predicted]],
    class_name: Callable[[int], str],
    min_iou: float = 0.5,
) -> Gallery:
    """Run ``predict`` (already at the serving threshold) on each (file name, image
    bytes, ground truth) and keep the images with a false positive or negative."""
    items: list[GalleryItem] = []
    images = tp = fp = fn = 0
    for path, data, truths in samples:
        m = match(predict(data), truths, min_iou)
        images += 1
        tp, fp, fn = tp + len(m.matched), fp + len(m.false_positives), fn + len(m.false_negatives)
        if not m.clean:
            items.append(
                GalleryItem(
                    path,
                    len(m.matched),
                    len(m.false_positives),
                    len(m.false_negatives),
                    draw_matching(data, m, class_name),
                )
            )
    items.sort(key=lambda i: (-(i.false_positives + i.false_negatives), i.path))
    return Gallery(items, images, tp, fp, fn)
