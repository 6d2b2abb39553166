"""What a person sees of a data set and its QA: a sample grid and HTML reports.

Plain functions returning PNG bytes or HTML text; the materializers save them as the
artifacts' dashboard visualizations.
"""

from __future__ import annotations

import html
import io
import random
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from visionloop.data.dataset import ImageDataset
from visionloop.data.qa import RULES
from visionloop.data.types import QuarantineReport, SplitLeakage

PALETTE = ["#ff3838", "#2c99a8", "#ffb21d", "#48f90a", "#3ddb86", "#8438ff", "#ff95c8", "#cfd231"]


def sample_grid(dataset: ImageDataset, n: int = 16, tile: int = 256, seed: int = 0) -> bytes:
    """PNG of up to ``n`` images (labelled first, seeded choice) with boxes and class
    names drawn; unlabeled images are marked as such."""
    records = sorted(dataset.records, key=lambda r: (not r.labeled, r.sha256))
    rng = random.Random(seed)
    labeled = [r for r in records if r.labeled]
    chosen = rng.sample(labeled, min(n, len(labeled)))
    chosen += [r for r in records if not r.labeled][: max(0, n - len(chosen))]
    cols = 4
    rows = max(1, (len(chosen) + cols - 1) // cols)
    canvas = Image.new("RGB", (cols * tile, rows * tile), "white")
    font = ImageFont.load_default()
    for i, r in enumerate(chosen):
        img = Image.open(io.BytesIO(dataset.read_bytes(r))).convert("RGB")
        scale = min(tile / img.width, tile / img.height)
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))))
        draw = ImageDraw.Draw(img)
        for b in r.boxes:
            color = PALETTE[b.class_id % len(PALETTE)]
            draw.rectangle([b.x1 * scale, b.y1 * scale, b.x2 * scale, b.y2 * scale], outline=color, width=2)
            name = (
                dataset.class_names[b.class_id] if b.class_id < len(dataset.class_names) else str(b.class_id)
            )
            draw.text((b.x1 * scale + 2, b.y1 * scale + 1), name, fill=color, font=font)
        caption = f"{r.split or 'unlabeled'} | {len(r.boxes)} box(es)" if r.labeled else "unlabeled"
        draw.text((3, img.height - 12), caption, fill="yellow", font=font)
        canvas.paste(img, ((i % cols) * tile, (i // cols) * tile))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _table(rows: Sequence[Sequence[object]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = (
    "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f0f0f0}"
    ".ok{color:#070}.bad{color:#b00}</style>"
)


def quarantine_html(report: QuarantineReport) -> str:
    counts = report.counts_by_rule()
    status = "ok" if report.total == report.accepted + report.quarantined else "bad"
    parts = [
        STYLE,
        f"<h2>Data QA: {html.escape(report.source)}</h2>",
        f"<p class='{status}'>{report.total} in = {report.accepted} accepted + "
        f"{report.quarantined} quarantined</p>",
        f"<p>Converted to RGB: {report.converted or 'none'}; EXIF-rotated: {report.exif_rotated}; "
        f"boxes clipped within tolerance: {report.boxes_clipped}; files ignored: {len(report.ignored)}</p>",
        "<h3>Quarantined by rule</h3>",
        _table([[rule, n, RULES.get(rule, "")] for rule, n in counts.items()], ["rule", "count", "meaning"])
        if counts
        else "<p>Nothing quarantined.</p>",
        "<h3>Quarantined files</h3>",
        _table(
            [[e.path, e.rule, e.reason, (e.sha256 or "")[:12]] for e in report.entries],
            ["file", "rule", "reason", "sha256"],
        )
        if report.entries
        else "",
        "<h3>Ignored files (not images, not labels)</h3>",
        _table([[i.path, i.reason] for i in report.ignored], ["file", "reason"])
        if report.ignored
        else "<p>None.</p>",
        *leakage_html(report.leakage),
    ]
    return "<html><body>" + "".join(parts) + "</body></html>"


def leakage_html(leakage: SplitLeakage | None) -> list[str]:
    """The splits the source declares, and the capture groups and identical images that
    straddle two of them."""
    if leakage is None:
        return ["<h3>Declared splits</h3><p>The source declares none.</p>"]
    status = "bad" if leakage.leaks else "ok"
    parts = [
        "<h3>Declared splits</h3>",
        f"<p>Labelled images per declared split: {leakage.declared}; with none declared: "
        f"{leakage.undeclared}</p>",
        f"<p class='{status}'>{leakage.straddling_groups} capture group(s) and {leakage.identical_images} "
        "identical image(s) straddle two declared splits</p>",
    ]
    if leakage.group_examples:
        parts.append(
            _table(
                [[g.group, g.splits, ", ".join(g.paths)] for g in leakage.group_examples],
                ["group", "images per split", "files (first ones)"],
            )
        )
    if leakage.identical_examples:
        parts.append(
            _table(
                [
                    [c.sha256[:12], ", ".join(f"{p} ({s})" for p, s in c.paths.items())]
                    for c in leakage.identical_examples
                ],
                ["sha256", "copies (declared split)"],
            )
        )
    return parts


def dataset_html(dataset: ImageDataset) -> str:
    stats = dataset.stats()
    plan = dataset.manifest.split_plan
    splits = [[k, v] for k, v in stats["per_split"].items()]
    classes = [
        [name, *(per.get(s, 0) for s in ("train", "val", "test"))]
        for name, per in stats["boxes_per_class"].items()
    ]
    return (
        "<html><body>"
        + STYLE
        + f"<h2>Image data set {html.escape(dataset.manifest.name)} {dataset.short_id}</h2>"
        + f"<p>version id <code>{dataset.version_id}</code><br>source {html.escape(dataset.manifest.source)} "
        + f"({html.escape(dataset.manifest.label_format)})<br>{stats['images']} images in {stats['groups']} groups, "
        + f"{stats['labeled']} labelled, {stats['unlabeled']} unlabeled; {stats['boxes']} boxes "
        + f"({stats['boxes_per_image_mean']} per labelled image, max {stats['boxes_per_image_max']})</p>"
        + "<h3>Images per split</h3>"
        + _table(splits, ["split", "images"])
        + "".join(f"<p>{html.escape(line)}</p>" for line in (plan.lines() if plan else []))
        + "<h3>Boxes per class</h3>"
        + _table(classes, ["class", "train", "val", "test"])
        + "</body></html>"
    )
