"""Held-out evaluation through the edge runtime's own pre- and post-processing.

The ONNX (and INT8) files are run by ``edge_runtime.detector.OnnxDetector`` on the
test images, exactly as a device would, and scored by the same evaluator as
ultralytics' predictions of the PyTorch weights, so their difference is the parity.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from edge_runtime.detector import OnnxDetector
from visionloop.data.dataset import ImageDataset
from visionloop.data.types import ImageRecord
from visionloop.training.detection_metrics import DetectionMetrics, GroundTruth, Prediction, evaluate, parity
from visionloop.training.types import Metrics

EVAL_CONF = 0.001  # as ultralytics' validator: the whole PR curve
EVAL_IOU = 0.7
PARITY_CONF = 0.25  # boxes a user would see, for the share of boxes matched


def ground_truth(records: list[ImageRecord]) -> list[GroundTruth]:
    out = []
    for r in records:
        boxes = np.array([[b.x1, b.y1, b.x2, b.y2] for b in r.boxes], dtype=np.float32).reshape(-1, 4)
        out.append((boxes, np.array([b.class_id for b in r.boxes], dtype=np.int64)))
    return out


def to_metrics(m: DetectionMetrics) -> Metrics:
    return Metrics(
        map50=m.map50,
        map50_95=m.map50_95,
        precision=m.precision,
        recall=m.recall,
        per_class=m.per_class,
        images=m.n_images,
    )


def test_images(dataset: ImageDataset) -> tuple[list[ImageRecord], list[bytes]]:
    records = [r for r in dataset.split("test") if r.labeled]
    if not records:
        raise ValueError(f"data set {dataset.short_id} has no labelled test images to evaluate on")
    return records, [dataset.read_bytes(r) for r in records]


def bgr_arrays(images: list[bytes]) -> list[np.ndarray]:
    """Decoded images as ultralytics expects numpy input: HWC uint8 BGR."""
    return [
        np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))[:, :, ::-1]) for b in images
    ]


def onnx_predictions(
    model: bytes, images: list[bytes], conf: float = EVAL_CONF, iou: float = EVAL_IOU
) -> list[Prediction]:
    detector = OnnxDetector(model, conf=conf, iou=iou)
    return [detector.predict_arrays(image) for image in images]


def score(preds: list[Prediction], records: list[ImageRecord], class_names: list[str]) -> Metrics:
    return to_metrics(evaluate(preds, ground_truth(records), class_names))


def above(preds: list[Prediction], conf: float) -> list[Prediction]:
    return [(b[s >= conf], s[s >= conf], c[s >= conf]) for b, s, c in preds]


def parity_figures(
    reference: list[Prediction], candidate: list[Prediction], ref_metrics: Metrics, cand_metrics: Metrics
) -> dict[str, float]:
    """mAP differences and the share of the reference's boxes (score >= 0.25) that the
    candidate also finds (same class, IoU >= 0.5), and the reverse."""
    p = parity(above(reference, PARITY_CONF), above(candidate, PARITY_CONF))
    return {
        "map50_diff": round(cand_metrics.map50 - ref_metrics.map50, 4),
        "map50_95_diff": round(cand_metrics.map50_95 - ref_metrics.map50_95, 4),
        "boxes_matched_share": round(p.share_a, 4),
        "boxes_matched_share_reverse": round(p.share_b, 4),
        "reference_boxes": float(p.n_a),
        "candidate_boxes": float(p.n_b),
    }


def confusion_png(
    preds: list[Prediction],
    records: list[ImageRecord],
    class_names: list[str],
    conf: float,
    iou: float = 0.45,
) -> bytes:
    """The confusion matrix of ``preds`` at the serving threshold ``conf`` (what a device
    answers), as a PNG: rows the predicted class, columns the true one, the last of each
    ``background`` (a false positive is predicted/background, a miss background/true).
    Ultralytics' own is drawn at its validation threshold (0.001), where background
    false positives run into the thousands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visionloop.training.detection_metrics import confusion_matrix

    matrix = confusion_matrix(preds, ground_truth(records), len(class_names), conf=conf, iou=iou)
    labels = [*class_names, "background"]
    size = max(3.6, 1.6 + 0.7 * len(labels))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(
        f"Confusion matrix, test split ({len(records)} images)\nat the serving threshold {conf:g}",
        fontsize=10,
    )
    top = matrix.max() or 1
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if n > top / 2 else "black")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()
