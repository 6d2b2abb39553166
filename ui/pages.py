"""The pages about models: the versions (the index), a version's model card, its
false positive / false negative gallery and "try it". Each takes what ``ui.readers``
read and returns a whole HTML page."""

from __future__ import annotations

import base64
from typing import Any

from ui.gallery import Gallery
from ui.html import Html, badge, empty, esc, link, num, page, table
from ui.readers import Overview


def _when(value: Any) -> str:
    return str(value or "")[:16].replace("T", " ")


def history_list(events: list[dict[str, Any]]) -> Html:
    """Stage changes, oldest first: stage, when, who and why."""
    if not events:
        return Html('<span class="note">no stage change</span>')
    items = []
    for e in events:
        why = f": {esc(e['why'])}" if e.get("why") else ""
        items.append(
            f"<li>{badge(str(e.get('stage', '?')))} {esc(_when(e.get('at')))} "
            f"by <strong>{esc(e.get('by') or '?')}</strong>{why}</li>"
        )
    return Html(f'<ul class="history">{"".join(items)}</ul>')


def _checks(value: Any) -> str:
    return {True: "passed", False: "FAILED"}.get(value, "not run")


def models_page(o: Overview) -> str:
    """Every version (newest first) and what the channel's pointers name."""
    if o.channel is None:
        where = Html('<span class="note">no channel known for this model</span>')
    else:
        pointers = ", ".join(
            f"{badge(stage)} → {f'version {esc(v)}' if v else 'nothing'}" for stage, v in o.pointers.items()
        )
        trust = (
            "verified with the signing key"
            if o.verified
            else "read without verification: no signing key here ($VISIONLOOP_SIGNING_KEY)"
        )
        error = f'<div class="error">{esc(o.channel_error)}</div>' if o.channel_error else ""
        where = Html(
            f"Channel <code>{esc(o.channel)}</code><br>Pointers: <span id=pointers>{pointers or 'none'}</span> "
            f'<span class="note">({trust})</span>{error}'
        )
    body = f"<h1>Model {esc(o.model)}</h1><div class=box>{where}</div>"
    if not o.versions:
        body += empty(
            f"No version of {o.model} yet.",
            "Run the main job (python run.py) or name another configuration with --config.",
        )
        return page("Models", body, o.model, "models")
    rows = [
        [
            link(f"/versions/{v['version']}", f"version {v['version']}"),
            badge(v["stage"]),
            num(v.get("test_map50")),
            num(v.get("test_map50_95")),
            Html(f"<code>{esc(str(v.get('dataset_version_id') or '-')[:12])}</code>"),
            _checks(v.get("staging_checks_passed")),
            v.get("mlflow_version") or "-",
            v.get("created") or "-",
            history_list(v.get("history") or []),
        ]
        for v in reversed(o.versions)
    ]
    headers = ["version", "stage", "test mAP50", "mAP50-95", "data set", "staging checks", "MLflow version"]
    headers.append("created")
    body += table([*headers, "stage history (who, when, why)"], rows, "versions")
    return page("Models", body, o.model, "models")


def _metric_rows(report: Any) -> list[list[Any]]:
    rows = [
        ["all classes", num(report.test.precision), num(report.test.recall)]
        + [num(report.test.map50), num(report.test.map50_95)]
    ]
    for name, m in report.test.per_class.items():
        rows.append(
            [name, num(m.get("precision")), num(m.get("recall")), num(m.get("map50")), num(m.get("map50_95"))]
        )
    return rows


def card_page(model: str, mv: Any, report: Any, stage: str, events: list[dict[str, Any]]) -> str:
    """The model card: facts, metrics per class, the PR curve and the whole report."""
    version = str(mv.name)
    p = report.train_params
    facts = [
        ["data set version", Html(f"<code>{esc(report.dataset_version_id)}</code>")],
        ["created", f"{mv.created:%Y-%m-%d %H:%M}" if mv.created else "-"],
        ["code commit", report.code_commit or "-"],
        ["test images", report.test.images],
        ["training", f"{p.epochs} epochs at {p.imgsz} px, batch {p.batch}, lr0 {p.lr0:g}, {p.device}"],
        ["training time", f"{report.train_seconds:.0f} s"],
        ["ONNX parity", "ok" if report.parity_ok else "FAILED"],
        ["INT8", ("kept: " if report.int8_kept else "not kept: ") + report.int8_reason],
        ["stage history", history_list(events)],
    ]
    body = (
        f"<h1>{esc(model)} version {esc(version)} {badge(stage)}</h1>"
        f"<p>{link(f'/versions/{version}/gallery', 'False positives and negatives on the test split')} · "
        f"{link(f'/versions/{version}/report', 'the evaluation report on its own page')} · "
        f"{link('/', 'all versions')}</p>"
        f"{table(['', ''], facts, 'facts')}"
        "<h2>Metrics per class (test split, ultralytics validator)</h2>"
        f"{table(['class', 'precision', 'recall', 'mAP50', 'mAP50-95'], _metric_rows(report), 'per-class')}"
    )
    if "pr_curve" in report.plots:
        body += (
            "<h2>Precision-recall curve</h2>"
            f'<img id="pr-curve" src="/versions/{esc(version)}/plots/pr_curve.png" '
            'alt="precision-recall curve" style="max-width:720px;width:100%;background:#fff">'
        )
    else:
        body += empty("This version's report has no PR curve.")
    body += (
        "<h2>Evaluation report</h2>"
        f'<iframe class="report" src="/versions/{esc(version)}/report" title="evaluation report"></iframe>'
    )
    return page(f"{model} version {version}", body, model, "models")


def gallery_page(model: str, version: str, g: Gallery, conf: float, min_iou: float) -> str:
    """The test images with a false positive or negative, drawn, with file names."""
    legend = (
        '<div class="legend"><span><i class="swatch" style="background:#28aa46"></i>matched</span>'
        '<span><i class="swatch" style="background:#e13228"></i>false positive (score)</span>'
        '<span><i class="swatch" style="background:#faaa00"></i>false negative</span></div>'
    )
    summary = (
        f"{g.images} test images at the serving threshold conf {conf:g}, matched by class at IoU ≥ "
        f"{min_iou:g}: {g.true_positives} found, {g.false_positives} false positives, "
        f"{g.false_negatives} false negatives; {len(g.items)} images with an error."
    )
    body = (
        f"<h1>{esc(model)} version {esc(version)}: false positives and negatives</h1>"
        f"<p>{link(f'/versions/{version}', 'back to the model card')}</p>"
        f'<div class="box" id="gallery-summary">{esc(summary)}{legend}</div>'
    )
    if not g.items:
        body += empty(f"No false positive or negative on the {g.images} test images.")
    else:
        figures = [
            f'<figure><img src="/versions/{esc(version)}/gallery/{i}.jpg" alt="{esc(item.path)}">'
            f'<figcaption><strong class="filename">{esc(item.path)}</strong><br>'
            f"{item.false_positives} FP · {item.false_negatives} FN · {item.true_positives} found"
            "</figcaption></figure>"
            for i, item in enumerate(g.items)
        ]
        body += f'<div class="grid" id="gallery">{"".join(figures)}</div>'
    return page(f"{model} version {version} gallery", body, model, "models")


UPLOAD_FORM = (
    '<form class="box" method="post" action="/try" enctype="multipart/form-data">'
    '<input type="file" name="image" accept="image/*" required> '
    '<button type="submit">Detect</button></form>'
)


def try_page(
    model: str,
    version: str | None,
    conf: float,
    detections: list[Any] | None = None,
    jpeg: bytes | None = None,
    filename: str = "",
    error: str = "",
) -> str:
    """The upload form; after an upload, the image with the boxes and the detections."""
    body = "<h1>Try it</h1>"
    if version is None:
        body += empty(
            f"No version of {model} is in production, so there is nothing to try.",
            "Promote one with python run.py promote MODEL VERSION --to production.",
        )
        return page("Try it", body, model, "try")
    body += (
        f"<p>Runs {esc(model)} version {esc(version)} (production) through the edge runtime's own "
        f"detector at the serving threshold conf {conf:g}.</p>{UPLOAD_FORM}"
    )
    if error:
        body += f'<div class="error">{esc(error)}</div>'
    if jpeg is not None and detections is not None:
        uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        rows = [
            [i + 1, d.class_name, num(d.score), ", ".join(f"{v:.0f}" for v in d.box)]
            for i, d in enumerate(detections)
        ]
        body += (
            f"<h2>{esc(filename)}: {len(detections)} detection{'s' if len(detections) != 1 else ''}</h2>"
            '<div style="display:flex;gap:20px;align-items:flex-start;flex-wrap:wrap">'
            f'<img id="result" src="{uri}" alt="{esc(filename)} with the detections drawn" '
            'style="max-width:min(100%,1024px);border:1px solid #d0d7de">'
            f"{table(['#', 'class', 'score', 'box x1, y1, x2, y2 (pixels)'], rows, 'detections')}</div>"
        )
    return page("Try it", body, model, "try")
