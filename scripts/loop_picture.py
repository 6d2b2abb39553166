"""Draw docs/loop.png, the picture of the loop in the README: what runs, in order, and
what comes back. Run it again after changing a stage: `.venv/bin/python scripts/loop_picture.py`."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "docs" / "loop.png"
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
BOLD = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"

STAGES = [
    ("images", "a folder or S3 prefix\n(your own: run.py init)", (232, 240, 254)),
    ("data pipeline", "QA, quarantine,\nversion, split", (232, 245, 233)),
    ("training pipeline", "tune, train, evaluate,\nONNX + INT8, register", (255, 243, 224)),
    ("deployment pipeline", "gate, sign, publish,\nstaging checks", (243, 229, 245)),
    ("edge runtime", "verify, swap, serve;\npage at GET /", (224, 247, 250)),
]


def main() -> None:
    w, h = 1520, 470
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    title, body, small = (
        ImageFont.truetype(str(BOLD), 20),
        ImageFont.truetype(str(FONT), 17),
        ImageFont.truetype(str(FONT), 15),
    )
    box_w, box_h, gap, top = 268, 120, 28, 90
    d.text((30, 25), "visionloop: the loop", font=ImageFont.truetype(str(BOLD), 26), fill=(30, 30, 30))
    centers = []
    for i, (name, text, color) in enumerate(STAGES):
        x = 30 + i * (box_w + gap)
        d.rounded_rectangle(
            [x, top, x + box_w, top + box_h], radius=14, fill=color, outline=(90, 90, 90), width=2
        )
        d.text((x + 14, top + 12), name, font=title, fill=(20, 20, 20))
        d.multiline_text((x + 14, top + 48), text, font=body, fill=(50, 50, 50), spacing=4)
        centers.append(x)
        if i:
            ax = x - gap + 4
            d.line([ax, top + box_h // 2, x - 6, top + box_h // 2], fill=(60, 60, 60), width=3)
            d.polygon(
                [(x - 4, top + box_h // 2), (x - 16, top + box_h // 2 - 8), (x - 16, top + box_h // 2 + 8)],
                fill=(60, 60, 60),
            )
    # the way back: edge -> raw image store -> labeling -> data
    y = top + box_h + 110
    lab_x = centers[1] + 60
    d.rounded_rectangle(
        [lab_x, y - 40, lab_x + 520, y + 40], radius=14, fill=(255, 235, 238), outline=(90, 90, 90), width=2
    )
    d.text((lab_x + 14, y - 32), "labeling pipeline (run.py label)", font=title, fill=(20, 20, 20))
    d.text(
        (lab_x + 14, y + 2),
        "Label Studio with pre-labels, review, a new data set version",
        font=small,
        fill=(50, 50, 50),
    )
    ex = centers[4] + box_w // 2
    d.line([ex, top + box_h, ex, y, lab_x + 520, y], fill=(180, 40, 60), width=3, joint="curve")
    d.polygon([(lab_x + 520, y), (lab_x + 534, y - 8), (lab_x + 534, y + 8)], fill=(180, 40, 60))
    d.text(
        (lab_x + 560, y - 50),
        "uncertain images, a sample of the empty ones\n(--feedback to the raw image store)",
        font=small,
        fill=(150, 30, 50),
        spacing=3,
    )
    dx = lab_x + 40
    d.line([dx, y - 40, dx, top + box_h + 6], fill=(180, 40, 60), width=3)
    d.polygon(
        [(dx, top + box_h + 4), (dx - 8, top + box_h + 16), (dx + 8, top + box_h + 16)], fill=(180, 40, 60)
    )
    d.text(
        (30, h - 60),
        "monitoring (run.py monitor) compares the edge's prediction logs with the training data and asks for "
        "labeling or retraining on drift;",
        font=small,
        fill=(70, 70, 70),
    )
    d.text(
        (30, h - 38),
        "run.py ui shows models, stages, model cards, false positives and negatives, labeling and drift in one place.",
        font=small,
        fill=(70, 70, 70),
    )
    img.save(OUT, optimize=True)


if __name__ == "__main__":
    main()
