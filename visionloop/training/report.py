"""The evaluation report as one self-contained HTML page (plots embedded)."""

from __future__ import annotations

import base64
import html

from visionloop.data.render import STYLE, _table
from visionloop.training.types import EvaluationReport, Metrics

PLOT_TITLES = {
    "pr_curve": "Precision-recall curve (test split)",
    "confusion_matrix": "Confusion matrix (test split)",
    "predictions": "Sample predictions (test split)",
    "labels": "The same images, labels",
}


def _metric_row(name: str, m: Metrics | None) -> list[object]:
    if m is None:
        return [name, "-", "-", "-", "-"]
    return [name, f"{m.map50:.4f}", f"{m.map50_95:.4f}", f"{m.precision:.4f}", f"{m.recall:.4f}"]


def report_html(r: EvaluationReport) -> str:
    rows = [
        _metric_row("PyTorch, ultralytics validator (the headline)", r.test),
        _metric_row("PyTorch, ultralytics predict", r.pytorch_predict),
        _metric_row("ONNX fp32, edge runtime", r.onnx),
        _metric_row("ONNX INT8, edge runtime", r.int8),
    ]
    per_class = [
        [
            name,
            f"{v.get('map50', 0):.4f}",
            f"{v.get('map50_95', 0):.4f}",
            f"{v.get('precision', 0):.4f}",
            f"{v.get('recall', 0):.4f}",
        ]
        for name, v in r.test.per_class.items()
    ]
    parity = [[k, v] for k, v in r.parity.items()]
    parts = [
        STYLE,
        f"<h2>Evaluation: {html.escape(r.model_name)}</h2>",
        f"<p>data set version <code>{r.dataset_version_id}</code>; {r.test.images} test images "
        f"(never seen by tuning or training); code commit <code>{html.escape(r.code_commit or 'unknown')}</code>; "
        f"training took {r.train_seconds:.0f} s</p>",
        "<h3>Test split</h3>",
        _table(rows, ["model", "mAP50", "mAP50-95", "precision", "recall"]),
        "<h3>Per class (ultralytics validator)</h3>",
        _table(per_class, ["class", "mAP50", "mAP50-95", "precision", "recall"]),
        f"<h3>ONNX parity with the PyTorch model: <span class='{'ok' if r.parity_ok else 'bad'}'>"
        f"{'within tolerance' if r.parity_ok else 'OUT OF TOLERANCE'}</span></h3>",
        _table(parity, ["figure", "value"]),
        f"<h3>INT8: <span class='{'ok' if r.int8_kept else 'bad'}'>{'kept' if r.int8_kept else 'not kept'}</span></h3>",
        f"<p>{html.escape(r.int8_reason)}</p>",
        "<h3>Training parameters</h3>",
        _table([[k, v] for k, v in r.train_params.model_dump().items()], ["parameter", "value"]),
    ]
    if r.tuning and r.tuning.trials:
        trials = [
            [
                t.index,
                t.params.lr0,
                t.params.augment,
                t.params.imgsz,
                t.params.epochs,
                t.train_images,
                f"{t.map50:.4f}",
                f"{t.map50_95:.4f}",
                f"{t.fitness:.4f}",
                f"{t.seconds:.0f}",
                "best" if t.index == r.tuning.best_index else "",
            ]
            for t in r.tuning.trials
        ]
        parts += [
            "<h3>Tuning trials (validated on the val split)</h3>",
            _table(
                trials,
                [
                    "trial",
                    "lr0",
                    "augment",
                    "imgsz",
                    "epochs",
                    "train images",
                    "mAP50",
                    "mAP50-95",
                    "fitness",
                    "seconds",
                    "",
                ],
            ),
        ]
    for key, data in r.plots.items():
        mime = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
        parts.append(
            f"<h3>{html.escape(PLOT_TITLES.get(key, key))}</h3>"
            f"<img style='max-width:900px' src='data:{mime};base64,{base64.b64encode(data).decode()}'>"
        )
    return "<html><body>" + "".join(parts) + "</body></html>"
