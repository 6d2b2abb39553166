"""Image streams for measuring the drift detector: held-out images as a camera would
send them, unchanged or shifted (darker, blurred, another camera). Used by the tests and
by ``benchmarks/drift_rates.py``; the shifts are deterministic given the seed."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

SHIFTS = ("none", "darker", "blurred", "other_camera")


def metal_tag_pools(folder: Path, held_out: float = 0.3, seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    """(reference images, held-out images) of a metal-tags folder, split by capture
    group (crops of one photo stay on one side)."""
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    groups: dict[str, list[Path]] = {}
    for p in files:
        m = re.match(r"^(?P<group>.+?)-cropped-", p.name)
        groups.setdefault(m.group("group") if m else p.stem, []).append(p)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    cut = max(1, round(len(names) * held_out))
    held = [p.read_bytes() for g in names[:cut] for p in groups[g]]
    ref = [p.read_bytes() for g in names[cut:] for p in groups[g]]
    return ref, held


def shift(data: bytes, kind: str, rng: random.Random) -> bytes:
    """One image as a shifted camera would deliver it (JPEG, as cameras do); ``none``
    gives the original bytes."""
    if kind == "none":
        return data
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if kind == "darker":
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.5, 0.7))
    elif kind == "blurred":
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 2.5)))
    elif kind == "other_camera":  # another sensor: other resolution and a warm colour cast
        image = image.resize((640, 480), Image.Resampling.BILINEAR)
        r, g, b = image.split()
        image = Image.merge(
            "RGB", (r.point(lambda v: min(255, int(v * 1.15))), g, b.point(lambda v: int(v * 0.85)))
        )
    else:
        raise ValueError(f"unknown shift {kind!r}; known: {', '.join(SHIFTS)}")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=rng.choice((85, 90, 95)))
    return out.getvalue()


def stream(pool: list[bytes], kind: str, n: int, seed: int) -> list[bytes]:
    """``n`` images drawn (with replacement, seeded) from ``pool``, shifted by ``kind``."""
    rng = random.Random(seed)
    return [shift(rng.choice(pool), kind, rng) for _ in range(n)]
