"""HTML pages and images of the hierarchy artifacts (dashboard visualizations): a
classification data set's samples and counts, a node's evaluation and gate, and the
bundle's decision with per-node, end-to-end and flat figures side by side."""

from __future__ import annotations

import html
import io
import random

from PIL import Image, ImageDraw, ImageFont

from visionloop.data.render import STYLE, _table
from visionloop.deploy.report import _checks, _verdict
from visionloop.hierarchy.dataset import ClassificationDataset
from visionloop.hierarchy.metrics import ClassifierMetrics, HierarchyMetrics
from visionloop.hierarchy.types import (
    BundleDecision,
    BundleEvaluation,
    BundleOutcome,
    NodeDecision,
    NodeReport,
)


def sample_grid(dataset: ClassificationDataset, n: int = 24, tile: int = 96, seed: int = 0) -> bytes:
    """PNG of up to ``n`` images (a seeded choice) captioned with label and split."""
    rng = random.Random(seed)
    chosen = rng.sample(dataset.records, min(n, len(dataset.records)))
    cols = 6
    rows = max(1, (len(chosen) + cols - 1) // cols)
    canvas = Image.new("RGB", (cols * tile, rows * (tile + 14)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, r in enumerate(chosen):
        img = Image.open(io.BytesIO(dataset.read_bytes(r))).convert("RGB").resize((tile - 4, tile - 4))
        x, y = (i % cols) * tile, (i // cols) * (tile + 14)
        canvas.paste(img, (x + 2, y + 2))
        draw.text((x + 2, y + tile), f"{r.label} ({r.split})", fill="black", font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def dataset_html(dataset: ClassificationDataset) -> str:
    stats = dataset.stats()
    rows = [
        [c, *(counts.get(s, 0) for s in ("train", "val", "test"))] for c, counts in stats["per_class"].items()
    ]
    m = dataset.manifest
    return "".join(
        [
            STYLE,
            f"<h2>Classification data set {html.escape(m.name)} {dataset.short_id}</h2>",
            f"<p>{stats['images']} images, {stats['classes']} classes; source {html.escape(m.source)}"
            + (f"; drawn from leaf data set {m.parent_version[:12]}" if m.parent_version else "")
            + "</p>",
            _table(rows, ["class", "train", "val", "test"]),
        ]
    )


def _metrics_rows(m: ClassifierMetrics) -> list[list[object]]:
    return [
        [c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", int(v["support"])]
        for c, v in sorted(m.per_class.items())
    ]


def node_report_html(r: NodeReport) -> str:
    return "".join(
        [
            STYLE,
            f"<h2>Node {html.escape(r.node)}: {html.escape(r.model_name)}</h2>",
            f"<p>Test top-1 {r.test.top1:.4f} on {r.test.images} images (ONNX through the edge runtime); "
            f"PyTorch {r.pytorch_top1:.4f}; parity {'ok' if r.parity_ok else 'FAILED'} {html.escape(str(r.parity))}</p>",
            f"<p>Trained {r.epochs_run} epochs in {r.train_seconds:.1f} s on {r.train_images} images from "
            f"{html.escape(r.weights)}; data set {r.dataset_version_id[:12]}</p>",
            _table(_metrics_rows(r.test), ["class", "precision", "recall", "test images"]),
            "<h3>Confusion (rows: true, columns: predicted)</h3>",
            _table(
                [[c, *row] for c, row in zip(r.test.class_names, r.test.confusion, strict=True)],
                ["", *r.test.class_names],
            ),
        ]
    )


def node_decision_html(d: NodeDecision) -> str:
    prod = f"{d.production.top1:.4f}" if d.production else "-"
    return "".join(
        [
            STYLE,
            f"<h2>Gate of node {html.escape(d.node)}: {html.escape(d.model_name)} version {html.escape(d.candidate_version)}</h2>",
            _verdict(d.passed, "passed" if d.passed else "rejected"),
            "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in d.reasons) + "</ul>",
            _table(
                [["top-1", f"{d.candidate.top1:.4f}", prod]],
                ["", "candidate", f"production ({d.production_version or 'none'})"],
            ),
            _checks(d.checks),
        ]
    )


def _hier_rows(label: str, m: HierarchyMetrics | None) -> list[object]:
    if m is None:
        return [label, "-", "-", "-", "-", "-", "-"]
    return [
        label,
        f"{m.top1:.4f}",
        f"{m.group_accuracy:.4f}",
        f"{m.fallback_rate:.3f}",
        f"{m.hierarchical_precision:.4f}",
        f"{m.hierarchical_recall:.4f}",
        f"{m.hierarchical_f:.4f}",
    ]


def evaluation_html(e: BundleEvaluation) -> str:
    if e.end_to_end is None:
        return f"<p>No end-to-end figures: {html.escape(e.note)}</p>"
    head = ["", "leaf top-1", "group accuracy", "fallback rate", "hP", "hR", "hF"]
    rows = [
        _hier_rows(f"bundle (fallback below {e.child_min_conf})", e.end_to_end),
        _hier_rows("bundle, always the child", e.no_fallback),
    ]
    if e.flat is not None:
        rows.append(_hier_rows(f"flat model {e.flat_model or ''}", e.flat))
    nodes = [
        [
            k,
            v.get("model", ""),
            v.get("version", ""),
            v.get("task", "classify"),
            v.get("test_top1", "-") if v.get("task", "classify") == "classify" else "-",
            v.get("test_map50", "-") if v.get("task") == "detect" else "-",
            v.get("test_map50_95", "-") if v.get("task") == "detect" else "-",
            v.get("train_seconds", ""),
        ]
        for k, v in e.nodes.items()
    ]
    detectors = [
        [
            g,
            d.images,
            f"{d.routed:.3f}",
            f"{d.fallback_rate:.3f}",
            f"{d.map50:.4f}",
            f"{d.map50_95:.4f}",
            f"{d.child_map50:.4f}",
            f"{d.child_map50_95:.4f}",
            d.routed_in,
        ]
        for g, d in e.detectors.items()
    ]
    detector_part = (
        [
            "<h3>Detector groups end to end (their images in the leaf test split)</h3>",
            _table(
                detectors,
                [
                    "group",
                    "images",
                    "routed to it",
                    "fallback",
                    "mAP50 through the bundle",
                    "mAP50-95",
                    "child alone mAP50",
                    "mAP50-95",
                    "other images routed in",
                ],
            ),
        ]
        if detectors
        else []
    )
    return "".join(
        [
            "<h3>End to end on the leaf test split (classifier groups' images)</h3>",
            _table(rows, head),
            *detector_part,
            "<h3>Nodes (on their own test split, ONNX through the edge runtime)</h3>",
            _table(
                nodes, ["node", "model", "version", "task", "test top-1", "test mAP50", "mAP50-95", "train s"]
            ),
            f"<p>Latency (ms, parent + child, on this machine): {html.escape(str(e.latency_ms))}</p>",
        ]
    )


def bundle_decision_html(d: BundleDecision) -> str:
    return "".join(
        [
            STYLE,
            f"<h2>Bundle gate: {html.escape(d.bundle_model)} version {html.escape(d.candidate_version)}</h2>",
            _verdict(d.passed, "passed" if d.passed else "refused: production unchanged"),
            "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in d.reasons) + "</ul>",
            "<p>Pins: " + html.escape(", ".join(f"{k} = {v}" for k, v in d.pins.items())) + "</p>",
            evaluation_html(d.candidate),
            _table(
                [_hier_rows(f"production ({d.production_version})", d.production)],
                ["", "leaf top-1", "group", "fallback", "hP", "hR", "hF"],
            )
            if d.production
            else "",
            "<h3>Checks</h3>",
            _checks(d.checks),
        ]
    )


def outcome_html(o: BundleOutcome) -> str:
    return "".join(
        [
            STYLE,
            f"<h2>Bundle {html.escape(o.bundle_model)} version {html.escape(o.version)}: {html.escape(o.stage)}</h2>",
            "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in o.reasons) + "</ul>",
            f"<p>Channel {html.escape(o.channel)}; pointers {html.escape(str(o.pointers))}</p>",
            _checks(o.staging_checks) if o.staging_checks else "",
        ]
    )
