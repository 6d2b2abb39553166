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


def detection_set(
    root: Path, n: int = 36, size: int = 160, seed: int = 0, classes: tuple[str, ...] = ("square",)
) -> Path:
    """A small, learnable YOLO-layout detection set: noisy backgrounds with one or two
    solid squares (class 0) per image; every image is its own capture group."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    for i in range(n):
        img = Image.new("RGB", (size, size), tuple(rng.randrange(60, 120) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        for _ in range(40):
            x, y = rng.randrange(size), rng.randrange(size)
            draw.point((x, y), fill=tuple(rng.randrange(256) for _ in range(3)))
        lines = []
        for _ in range(rng.choice((1, 2))):
            side = rng.randrange(size // 5, size // 3)
            x, y = rng.randrange(0, size - side), rng.randrange(0, size - side)
            draw.rectangle([x, y, x + side, y + side], fill=(240, 240, 30))
            lines.append(
                f"0 {(x + side / 2) / size:.6f} {(y + side / 2) / size:.6f} {side / size:.6f} {side / size:.6f}"
            )
        img.save(root / f"img_{i:03d}.jpg", quality=92)
        (root / f"img_{i:03d}.txt").write_text("\n".join(lines) + "\n")
    return root
