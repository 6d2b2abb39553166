"""A YOLO-format folder with every kind of bad input mixed among good images.

``build(root)`` returns what QA must conclude for each file: a rule name, or
``"accepted"``. The folder uses the flat YOLO layout (``a.jpg`` + ``a.txt``) with
``classes.txt`` naming two classes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from tests.factories import image_bytes

CLASSES = ["scratch", "dent"]
GOOD_LABEL = "0 0.5 0.5 0.25 0.25\n"
QA_SETTINGS = {"max_pixels": 2_000_000, "min_side": 32}


def exif_jpeg(orientation: int, size: tuple[int, int] = (120, 80), seed: int = 7) -> bytes:
    img = Image.open(io.BytesIO(image_bytes(size=size, seed=seed)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def build(root: Path, outside: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    def put(name: str, data: bytes, label: str | None, rule: str) -> None:
        (root / name).write_bytes(data)
        if label is not None:
            (root / name).with_suffix(".txt").write_text(label)
        expected[name] = rule

    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for i in range(6):
        put(f"good_{i}.jpg", image_bytes(seed=100 + i), GOOD_LABEL, "accepted")
    put("good_empty_label.jpg", image_bytes(seed=200), "", "accepted")  # labelled: no objects
    put("unlabeled.jpg", image_bytes(seed=201), None, "accepted")
    put("zero.jpg", b"", GOOD_LABEL, "zero_bytes")
    full = image_bytes(seed=300, size=(200, 150))
    put("truncated.jpg", full[: len(full) // 2], GOOD_LABEL, "truncated")
    put("garbage.jpg", full[:300] + bytes(range(256)) * 8, GOOD_LABEL, "undecodable")
    put("text.jpg", b"this is a text file, not a JPEG\n" * 4, GOOD_LABEL, "not_an_image")
    put(
        "bomb.png",
        image_bytes(size=(2000, 1500), fmt="PNG", mode="L", seed=301),
        GOOD_LABEL,
        "decompression_bomb",
    )
    put("tiny.jpg", image_bytes(size=(16, 16), seed=302), GOOD_LABEL, "too_small")
    put("sixteen_bit.png", image_bytes(fmt="PNG", mode="I;16", seed=303), GOOD_LABEL, "unsupported_mode")
    put("cmyk.jpg", image_bytes(mode="CMYK", seed=304), GOOD_LABEL, "accepted")
    put("palette.png", image_bytes(fmt="PNG", mode="P", seed=305), GOOD_LABEL, "accepted")
    put("alpha.png", image_bytes(fmt="PNG", mode="RGBA", seed=306), GOOD_LABEL, "accepted")
    put("rotated.jpg", exif_jpeg(6), "0 0.25 0.3125 0.25 0.125\n", "accepted")
    put("box_out.jpg", image_bytes(seed=307), "0 1.4 0.5 0.2 0.2\n", "box_out_of_bounds")
    put("box_flat.jpg", image_bytes(seed=308), "0 0.5 0.5 0.0 0.2\n", "box_degenerate")
    put("box_nan.jpg", image_bytes(seed=309), "0 nan 0.5 0.2 0.2\n", "box_nan")
    put("class_9.jpg", image_bytes(seed=310), "9 0.5 0.5 0.2 0.2\n", "unknown_class")
    put("bad_line.jpg", image_bytes(seed=311), "0 0.5 0.5\n", "bad_label")
    same = image_bytes(seed=312)
    put("dup_a.jpg", same, "0 0.5 0.5 0.2 0.2\n", "conflicting_duplicate")
    put("dup_b.jpg", same, "1 0.3 0.3 0.2 0.2\n", "conflicting_duplicate")
    twin = image_bytes(seed=313)
    put("twin_a.jpg", twin, GOOD_LABEL, "accepted")
    put("twin_b.jpg", twin, GOOD_LABEL, "duplicate")
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "secret.jpg"
    secret.write_bytes(image_bytes(seed=314))
    os.symlink(secret, root / "escape.jpg")
    (root / "escape.txt").write_text(GOOD_LABEL)
    expected["escape.jpg"] = "path_escapes_root"
    (root / "notes.md").write_text("not an image\n")
    return expected
