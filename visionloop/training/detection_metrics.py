"""Detection metrics the way ultralytics' ``DetectionValidator`` computes them.

``evaluate`` takes per-image predictions and ground truth (xyxy pixel boxes, any one
coordinate frame per image, usually the original image) and reproduces the
validator's logic: per image, predictions in descending score order greedily claim
the best unclaimed same-class ground-truth box, separately at each of the 10 IoU
thresholds 0.50:0.05:0.95 (``BaseValidator.match_predictions``), IoU computed as
ultralytics' ``box_iou`` (float32, eps 1e-7); then ``ultralytics.utils.metrics.ap_per_class``
gives per-class AP (101-point COCO interpolation) and precision/recall at the
confidence that maximises the mean F1. Means run over the classes that have ground
truth, as in ultralytics; predictions of classes without ground truth count for
nothing. For figures comparable with ``model.val()``, predict with its settings
(``conf=0.001, iou=0.7, max_det=300``).

``match_share`` and ``parity`` compare two sets of predictions (e.g. the ONNX model
on the edge runtime against ultralytics, or a quantised model against the float one).
``confusion_matrix`` mirrors ultralytics' ``ConfusionMatrix.process_batch``.

ultralytics is imported lazily, after ``prepare_ultralytics()``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10).astype(np.float32)  # ultralytics' iouv (a float32 tensor)
EPS = 1e-7

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (n, 4) xyxy, scores (n,), class_ids (n,)
GroundTruth = tuple[np.ndarray, np.ndarray]  # boxes (m, 4) xyxy, class_ids (m,)


@functools.cache
def _ap_per_class() -> Callable[..., tuple[Any, ...]]:
    from visionloop.training.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.utils.metrics import ap_per_class

    return ap_per_class


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes, as ultralytics' ``box_iou`` (float32, eps 1e-7)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + np.float32(EPS))


def _prediction(pred: Prediction) -> Prediction:
    boxes, scores, class_ids = pred
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    if not len(boxes) == len(scores) == len(class_ids):
        raise ValueError(
            f"prediction arrays disagree: {len(boxes)} boxes, {len(scores)} scores, {len(class_ids)} ids"
        )
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order], class_ids[order]


def _ground_truth(gt: GroundTruth) -> GroundTruth:
    boxes, class_ids = gt
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    if len(boxes) != len(class_ids):
        raise ValueError(f"ground truth arrays disagree: {len(boxes)} boxes, {len(class_ids)} ids")
    return boxes, class_ids


def match_predictions(
    pred_classes: np.ndarray,
    true_classes: np.ndarray,
    iou: np.ndarray,
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """Boolean (n_pred, n_thresholds) true-positive matrix, as ``BaseValidator.match_predictions``.

    ``iou`` is (n_true, n_pred); predictions must be in descending score order. At each
    threshold, each prediction in turn claims the unclaimed same-class ground truth it
    overlaps most, and is a true positive when that IoU reaches the threshold.
    """
    correct = np.zeros((len(pred_classes), len(thresholds)), dtype=bool)
    if not len(pred_classes) or not len(true_classes):
        return correct
    iou = iou * (true_classes[:, None] == pred_classes[None, :])
    cols = np.arange(len(thresholds))
    matched = np.zeros((iou.shape[0], len(thresholds)), dtype=bool)
    for j in np.flatnonzero((iou >= thresholds.min()).any(0)):
        available = np.where(matched, 0, iou[:, j, None])
        k = available.argmax(0)
        correct[j] = available[k, cols] >= thresholds
        matched[k, cols] |= correct[j]
    return correct


@dataclass
class PRCurves:
    """Curves from ``ap_per_class`` for the classes with ground truth (rows follow ``classes``).

    ``recall`` (1000,) is the x axis of ``precision`` (k, 1000): the precision envelope
    at each recall, IoU 0.5 (ultralytics' PR_curve.png). ``confidence`` (1000,) is the x
    axis of ``precision_at_conf``, ``recall_at_conf`` and ``f1_at_conf`` (k, 1000), IoU 0.5.
    """

    classes: list[str]
    recall: np.ndarray
    precision: np.ndarray
    confidence: np.ndarray
    precision_at_conf: np.ndarray
    recall_at_conf: np.ndarray
    f1_at_conf: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "recall": self.recall.tolist(),
            "precision": self.precision.tolist(),
            "confidence": self.confidence.tolist(),
            "precision_at_conf": self.precision_at_conf.tolist(),
            "recall_at_conf": self.recall_at_conf.tolist(),
            "f1_at_conf": self.f1_at_conf.tolist(),
        }


@dataclass
class DetectionMetrics:
    """Means over the classes with ground truth; ``per_class`` maps each such class name
    to ``map50``, ``map50_95``, ``precision``, ``recall`` and ``n_gt``. ``precision`` and
    ``recall`` are taken at the confidence that maximises the mean F1 (ultralytics' P and R)."""

    map50: float
    map50_95: float
    precision: float
    recall: float
    per_class: dict[str, dict[str, float]]
    n_images: int
    n_gt: int
    n_pred: int = 0
    curves: PRCurves | None = field(default=None, repr=False, compare=False)

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        """JSON-ready; the curves only when asked (they are 1000 points a class)."""
        out: dict[str, Any] = {
            "map50": self.map50,
            "map50_95": self.map50_95,
            "precision": self.precision,
            "recall": self.recall,
            "per_class": {k: dict(v) for k, v in self.per_class.items()},
            "n_images": self.n_images,
            "n_gt": self.n_gt,
            "n_pred": self.n_pred,
        }
        if curves and self.curves is not None:
            out["curves"] = self.curves.to_dict()
        return out


def class_name(class_names: Sequence[str], class_id: int) -> str:
    return class_names[class_id] if 0 <= class_id < len(class_names) else f"class_{class_id}"


def evaluate(
    predictions: Sequence[Prediction], ground_truth: Sequence[GroundTruth], class_names: Sequence[str]
) -> DetectionMetrics:
    """mAP50, mAP50-95, P, R overall and per class, as ultralytics' ``DetectionValidator``.

    ``predictions[i]`` = (boxes (n, 4) xyxy px, scores (n,), class_ids (n,)) and
    ``ground_truth[i]`` = (boxes (m, 4) xyxy px, class_ids (m,)) for image i, in the
    same pixel frame. Any order of predictions within an image: they are sorted by score.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction sets for {len(ground_truth)} images")
    tps, confs, pred_cls, target_cls = [], [], [], []
    for pred, gt in zip(predictions, ground_truth, strict=True):
        p_boxes, p_scores, p_cls = _prediction(pred)
        g_boxes, g_cls = _ground_truth(gt)
        iou = box_iou(g_boxes, p_boxes)
        tps.append(match_predictions(p_cls, g_cls, iou))
        confs.append(p_scores)
        pred_cls.append(p_cls)
        target_cls.append(g_cls)
    tp = np.concatenate(tps, 0) if tps else np.zeros((0, len(IOU_THRESHOLDS)), bool)
    conf = np.concatenate(confs) if confs else np.zeros(0, np.float32)
    pcls = np.concatenate(pred_cls) if pred_cls else np.zeros(0, np.int64)
    tcls = np.concatenate(target_cls) if target_cls else np.zeros(0, np.int64)
    n_gt = int(len(tcls))
    if n_gt == 0:
        return DetectionMetrics(0.0, 0.0, 0.0, 0.0, {}, len(ground_truth), 0, int(len(pcls)))

    names = {i: class_name(class_names, i) for i in np.unique(np.concatenate([tcls, pcls])).tolist()}
    results = _ap_per_class()(tp, conf, pcls, tcls, plot=False, names=names)
    _, _, p, r, _, ap, classes, p_curve, r_curve, f1_curve, x, prec_values = results
    counts = np.bincount(tcls, minlength=int(classes.max()) + 1)
    per_class = {
        names[int(c)]: {
            "map50": float(ap[i, 0]),
            "map50_95": float(ap[i].mean()),
            "precision": float(p[i]),
            "recall": float(r[i]),
            "n_gt": int(counts[int(c)]),
        }
        for i, c in enumerate(classes)
    }
    curves = PRCurves(
        classes=[names[int(c)] for c in classes],
        recall=np.asarray(x),
        precision=np.asarray(prec_values),
        confidence=np.asarray(x),
        precision_at_conf=np.asarray(p_curve),
        recall_at_conf=np.asarray(r_curve),
        f1_at_conf=np.asarray(f1_curve),
    )
    return DetectionMetrics(
        map50=float(ap[:, 0].mean()),
        map50_95=float(ap.mean()),
        precision=float(p.mean()),
        recall=float(r.mean()),
        per_class=per_class,
        n_images=len(ground_truth),
        n_gt=n_gt,
        n_pred=int(len(pcls)),
        curves=curves,
    )


def _greedy_pairs(a: Prediction, b: Prediction, iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one same-class matching of A's boxes (best score first) to B's best unclaimed
    box with IoU >= ``iou``: (index in A, index in B, IoU) of each pair; A and B already sorted."""
    overlap = box_iou(a[0], b[0]) * (a[2][:, None] == b[2][None, :])
    ia, ib, ious = [], [], []
    claimed = np.zeros(len(b[0]), dtype=bool)
    for i in range(len(a[0])):
        row = np.where(claimed, -1.0, overlap[i])
        if not row.size:
            break
        j = int(row.argmax())
        if row[j] >= iou:
            claimed[j] = True
            ia.append(i)
            ib.append(j)
            ious.append(float(row[j]))
    return np.asarray(ia, np.int64), np.asarray(ib, np.int64), np.asarray(ious, np.float64)


@dataclass
class Parity:
    """How two sets of predictions of the same images agree (A the reference, B the candidate).

    ``share_a``: the share of A's boxes matched in B; ``share_b``: of B's boxes matched in A;
    ``min_iou``: the lowest IoU of a matched pair; ``max_score_diff`` and ``mean_score_diff``:
    the absolute score difference of matched pairs (1.0 / 0 when nothing matched)."""

    n_a: int
    n_b: int
    matched: int
    share_a: float
    share_b: float
    min_iou: float
    max_score_diff: float
    mean_score_diff: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parity(a_preds: Sequence[Prediction], b_preds: Sequence[Prediction], iou: float = 0.5) -> Parity:
    """Pair A's and B's boxes image by image, one to one and same class (greedy, A's best score first)."""
    if len(a_preds) != len(b_preds):
        raise ValueError(f"{len(a_preds)} prediction sets against {len(b_preds)}")
    n_a = n_b = 0
    ious: list[np.ndarray] = []
    diffs: list[np.ndarray] = []
    for pa, pb in zip(a_preds, b_preds, strict=True):
        a, b = _prediction(pa), _prediction(pb)
        n_a, n_b = n_a + len(a[0]), n_b + len(b[0])
        ia, ib, pair_iou = _greedy_pairs(a, b, iou)
        ious.append(pair_iou)
        diffs.append(np.abs(a[1][ia].astype(np.float64) - b[1][ib].astype(np.float64)))
    all_iou, all_diff = np.concatenate(ious), np.concatenate(diffs)
    matched = int(len(all_iou))
    return Parity(
        n_a=n_a,
        n_b=n_b,
        matched=matched,
        share_a=matched / n_a if n_a else 1.0,
        share_b=matched / n_b if n_b else 1.0,
        min_iou=float(all_iou.min()) if matched else 0.0,
        max_score_diff=float(all_diff.max()) if matched else 1.0,
        mean_score_diff=float(all_diff.mean()) if matched else 1.0,
    )


def match_share(
    a_preds: Sequence[Prediction], b_preds: Sequence[Prediction], iou: float = 0.5, symmetric: bool = False
) -> float:
    """Share of A's boxes (over all images) that have a same-class box in B with IoU >= ``iou``.

    Matching is one to one (greedy, A's best score first), so duplicates in A are not all
    matched by one box of B. ``symmetric``: matched pairs over the mean of both box counts,
    i.e. 2 * matched / (n_a + n_b), which also penalises extra boxes in B. No boxes at all
    on either side counts as full agreement (1.0); an empty A against a non-empty B
    gives 1.0 one-sided, 0.0 symmetric.
    """
    stats = parity(a_preds, b_preds, iou)
    if not symmetric:
        return stats.share_a
    total = stats.n_a + stats.n_b
    return 2 * stats.matched / total if total else 1.0


def confusion_matrix(
    predictions: Sequence[Prediction],
    ground_truth: Sequence[GroundTruth],
    nc: int,
    conf: float = 0.25,
    iou: float = 0.45,
) -> np.ndarray:
    """(nc + 1, nc + 1) counts, rows the predicted class, columns the true class, the last
    row/column background, as ultralytics' ``ConfusionMatrix.process_batch``: predictions
    scoring above ``conf``, best score first, claim their best-overlapping (IoU > ``iou``)
    ground truth regardless of class."""
    matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    for pred, gt in zip(predictions, ground_truth, strict=True):
        p_boxes, p_scores, p_cls = _prediction(pred)
        g_boxes, g_cls = _ground_truth(gt)
        keep = p_scores > conf
        p_boxes, p_scores, p_cls = p_boxes[keep], p_scores[keep], p_cls[keep]
        overlap = box_iou(g_boxes, p_boxes)
        gt_match = np.full(len(g_cls), -1)
        if overlap.size:
            candidates = np.flatnonzero((overlap > iou).any(0))
            for det in candidates[np.argsort(-p_scores[candidates], kind="stable")]:
                g = int(overlap[:, det].argmax())
                if overlap[g, det] > iou:
                    gt_match[g] = det
                    overlap[g] = 0
        for g, gc in enumerate(g_cls.tolist()):
            det = int(gt_match[g])
            matrix[int(p_cls[det]) if det >= 0 else nc, gc] += 1
        matched = set(gt_match[gt_match >= 0].tolist())
        for det, dc in enumerate(p_cls.tolist()):
            if det not in matched:
                matrix[dc, nc] += 1
    return matrix
