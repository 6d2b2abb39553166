"""Seeded synthetic images and label files for tests."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw


def image_bytes(
    size: tuple[int, int] = (96, 64), seed: int = 0, mode: str = "RGB", fmt: str = "JPEG", **save: object
) -> bytes:
    """A seeded image with a few rectangles; distinct seeds give distinct bytes."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        draw.rectangle(
            [x, y, x + size[0] // 4, y + size[1] // 4], fill=tuple(rng.randrange(256) for _ in range(3))
        )
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def write_image(path: Path, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(**kwargs))
    return path


def gt_csv_row(
    name: str, boxes: list[tuple[int, float, float, float, float]], w: int = 96, h: int = 64
) -> str:
    """A Ground Truth CSV row; boxes as (class_id, left, top, width, height) pixels."""
    anns = [
        {"class_id": c, "top": t, "left": left, "height": bh, "width": bw} for c, left, t, bw, bh in boxes
    ]
    return f's3://${{bucket}}/assets/{name},{w},{h},3,"{anns!r}",1657199072.0,job-1,APPROVED\n'


GT_HEADER = "source_ref,image_width,image_height,image_depth,annotations,event_time,labeling_job,status\n"


def square_image(
    rng: random.Random, width: int, height: int, side: tuple[float, float] = (0.2, 0.33)
) -> tuple[Image.Image, list[str]]:
    """A noisy background with one or two solid yellow squares (class 0), and their YOLO
    label lines; a square's side is a fraction ``side`` of the shorter image side."""
    img = Image.new("RGB", (width, height), tuple(rng.randrange(60, 120) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.point((x, y), fill=tuple(rng.randrange(256) for _ in range(3)))
    lines = []
    short = min(width, height)
    for _ in range(rng.choice((1, 2))):
        sq = max(2, rng.randrange(max(1, int(short * side[0])), max(2, int(short * side[1]))))
        x, y = rng.randrange(0, width - sq), rng.randrange(0, height - sq)
        draw.rectangle([x, y, x + sq, y + sq], fill=(240, 240, 30))
        lines.append(
            f"0 {(x + sq / 2) / width:.6f} {(y + sq / 2) / height:.6f} {sq / width:.6f} {sq / height:.6f}"
        )
    return img, lines


def detection_set(
    root: Path, n: int = 36, size: int = 160, seed: int = 0, classes: tuple[str, ...] = ("square",)
) -> Path:
    """A small, learnable YOLO-layout detection set: noisy backgrounds with one or two
    solid squares (class 0) per image; every image is its own capture group."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    for i in range(n):
        img, lines = square_image(rng, size, size, (0.2, 0.33))
        img.save(root / f"img_{i:03d}.jpg", quality=92)
        (root / f"img_{i:03d}.txt").write_text("\n".join(lines) + "\n")
    return root


def split_detection_set(
    root: Path,
    counts: dict[str, int],
    size: tuple[int, int] = (128, 128),
    side: tuple[float, float] = (0.2, 0.33),
    seed: int = 0,
    data_yaml: bool = True,
) -> Path:
    """``detection_set`` in the ultralytics layout with the source's own splits:
    ``images/<split>/*.jpg``, ``labels/<split>/*.txt`` and (``data_yaml``) a ``data.yaml``
    naming them; ``counts`` gives the images of each split."""
    rng = random.Random(seed)
    for split, n in counts.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, lines = square_image(rng, size[0], size[1], side)
            img.save(root / "images" / split / f"{split}_{i:03d}.jpg", quality=92)
            (root / "labels" / split / f"{split}_{i:03d}.txt").write_text("\n".join(lines) + "\n")
    if data_yaml:
        entries = "".join(f"{split}: images/{split}\n" for split in counts)
        (root / "data.yaml").write_text(f"path: .\n{entries}names:\n  0: square\n")
    else:
        (root / "classes.txt").write_text("square\n")
    return root
