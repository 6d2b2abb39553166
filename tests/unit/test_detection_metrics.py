"""The detection evaluator against ultralytics' own validator pieces, and the parity helpers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from visionloop.training.detection_metrics import (
    DetectionMetrics,
    box_iou,
    confusion_matrix,
    evaluate,
    match_predictions,
    match_share,
    parity,
)

NAMES = ["tag", "scratch", "dent"]
PERFECT_AP = 0.995  # ultralytics' 101-point interpolation never reaches 1.0 (recall 1 sits at the sentinel)


def gt_image() -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([[0, 0, 100, 100], [200, 200, 260, 300], [300, 10, 340, 60]], dtype=np.float32)
    return boxes, np.array([0, 1, 0])


def perfect(gt: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return gt[0].copy(), np.linspace(0.9, 0.5, len(gt[1])), gt[1].copy()


def test_perfect_predictions() -> None:
    gts = [gt_image(), gt_image()]
    m = evaluate([perfect(g) for g in gts], gts, NAMES)
    assert isinstance(m, DetectionMetrics)
    assert m.map50 == pytest.approx(PERFECT_AP) and m.map50_95 == pytest.approx(PERFECT_AP)
    assert m.precision == pytest.approx(1.0) and m.recall == pytest.approx(1.0)
    assert m.n_images == 2 and m.n_gt == 6 and m.n_pred == 6
    assert set(m.per_class) == {"tag", "scratch"}  # classes with ground truth only
    assert m.per_class["tag"]["n_gt"] == 4 and m.per_class["scratch"]["n_gt"] == 2
    d = m.to_dict()
    assert "curves" not in d and d["map50"] == m.map50
    curves = m.to_dict(curves=True)["curves"]
    assert curves["classes"] == ["tag", "scratch"] and len(curves["precision"][0]) == 1000


def test_no_predictions() -> None:
    gts = [gt_image()]
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    m = evaluate([empty], gts, NAMES)
    assert (m.map50, m.map50_95, m.precision, m.recall) == (0.0, 0.0, 0.0, 0.0)
    assert m.n_gt == 3 and m.n_pred == 0


def test_no_ground_truth() -> None:
    m = evaluate([perfect(gt_image())], [(np.zeros((0, 4)), np.zeros(0))], NAMES)
    assert m.map50 == 0.0 and m.n_gt == 0 and m.per_class == {}


def test_shifted_box_counts_at_50_not_at_95() -> None:
    gt = (np.array([[0, 0, 100, 100]], dtype=np.float32), np.array([0]))
    shifted = (np.array([[23, 0, 123, 100]], dtype=np.float32), np.array([0.8]), np.array([0]))  # IoU 77/123
    assert box_iou(gt[0], shifted[0])[0, 0] == pytest.approx(77 / 123, rel=1e-5)
    m = evaluate([shifted], [gt], NAMES)
    assert m.map50 == pytest.approx(PERFECT_AP)
    assert m.map50_95 == pytest.approx(PERFECT_AP * 3 / 10)  # a hit at IoU 0.50, 0.55, 0.60 only


def test_wrong_class_and_duplicates() -> None:
    gt = (np.array([[0, 0, 100, 100]], dtype=np.float32), np.array([0]))
    wrong = (gt[0], np.array([0.9]), np.array([1]))
    assert evaluate([wrong], [gt], NAMES).map50 == 0.0
    # a duplicate after the true positive is a false positive: precision 1/2 at recall 1
    dup = (np.vstack([gt[0], gt[0] + 1]), np.array([0.9, 0.8]), np.array([0, 0]))
    m = evaluate([dup], [gt], NAMES)
    assert m.map50 == pytest.approx(PERFECT_AP)
    # the same duplicate scoring higher than the true box still matches first: one TP either way
    assert evaluate([(dup[0], np.array([0.8, 0.9]), dup[2])], [gt], NAMES).map50 == pytest.approx(PERFECT_AP)


def test_prediction_order_does_not_matter() -> None:
    rng = np.random.default_rng(1)
    preds, gts = random_dataset(rng, 6)
    shuffled = []
    for boxes, scores, cls in preds:
        p = rng.permutation(len(scores))
        shuffled.append((boxes[p], scores[p], cls[p]))
    a, b = evaluate(preds, gts, NAMES), evaluate(shuffled, gts, NAMES)
    assert a.to_dict() == b.to_dict()


def random_dataset(rng: np.random.Generator, n_images: int) -> tuple[list, list]:
    preds, gts = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 400, (m, 2))
        gt_boxes = np.concatenate([xy, xy + rng.uniform(20, 120, (m, 2))], 1).astype(np.float32)
        gt_cls = rng.integers(0, 3, m)
        # noisy copies of some ground truth, some with the wrong class, plus clutter
        keep = rng.uniform(size=m) < 0.8
        noisy = gt_boxes[keep] + rng.normal(0, 8, (int(keep.sum()), 4)).astype(np.float32)
        cls = np.where(
            rng.uniform(size=int(keep.sum())) < 0.85, gt_cls[keep], rng.integers(0, 3, int(keep.sum()))
        )
        k = int(rng.integers(0, 4))
        xy2 = rng.uniform(0, 400, (k, 2))
        clutter = np.concatenate([xy2, xy2 + rng.uniform(20, 120, (k, 2))], 1).astype(np.float32)
        boxes = np.vstack([noisy, clutter]).astype(np.float32)
        classes = np.concatenate([cls, rng.integers(0, 3, k)])
        scores = rng.uniform(0.01, 1, len(boxes)).astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        preds.append((boxes[order], scores[order], classes[order]))
        gts.append((gt_boxes, gt_cls))
    return preds, gts


@pytest.mark.parametrize("seed", range(3))
def test_matches_ultralytics_validator(seed: int) -> None:
    """The same numbers as DetectionValidator.match_predictions + DetMetrics on random data."""
    from visionloop.training.offline import prepare_ultralytics

    prepare_ultralytics()
    import torch
    from ultralytics.models.yolo.detect.val import DetectionValidator
    from ultralytics.utils.metrics import DetMetrics
    from ultralytics.utils.metrics import box_iou as ul_box_iou

    rng = np.random.default_rng(seed)
    preds, gts = random_dataset(rng, 25)
    fake_validator = SimpleNamespace(iouv=torch.linspace(0.5, 0.95, 10))
    metrics = DetMetrics(names=dict(enumerate(NAMES)))
    for i, ((boxes, scores, cls), (gt_boxes, gt_cls)) in enumerate(zip(preds, gts, strict=True)):
        if len(gt_cls) and len(cls):
            iou = ul_box_iou(torch.from_numpy(gt_boxes), torch.from_numpy(boxes))
            tp = DetectionValidator.match_predictions(
                fake_validator,
                torch.from_numpy(cls.astype(np.float32)),
                torch.from_numpy(gt_cls.astype(np.float32)),
                iou,
            ).numpy()
            ours = match_predictions(cls, gt_cls, box_iou(gt_boxes, boxes))
            assert np.array_equal(tp, ours)
        else:
            tp = np.zeros((len(cls), 10), dtype=bool)
        metrics.update_stats(
            {
                "tp": tp,
                "conf": scores,
                "pred_cls": cls.astype(np.float32),
                "target_cls": gt_cls.astype(np.float32),
                "target_img": np.unique(gt_cls),
                "im_name": f"{i}.jpg",
            }
        )
    metrics.process()
    mp, mr, map50, map50_95 = metrics.mean_results()
    m = evaluate(preds, gts, NAMES)
    assert 0.05 < m.map50 < 0.99  # a non-trivial case
    assert m.map50 == pytest.approx(map50, abs=1e-9)
    assert m.map50_95 == pytest.approx(map50_95, abs=1e-9)
    assert m.precision == pytest.approx(mp, abs=1e-9)
    assert m.recall == pytest.approx(mr, abs=1e-9)
    for i, c in enumerate(metrics.ap_class_index):
        p, r, ap50, ap = metrics.class_result(i)
        row = m.per_class[NAMES[int(c)]]
        assert row["map50"] == pytest.approx(ap50) and row["map50_95"] == pytest.approx(ap)
        assert row["precision"] == pytest.approx(p) and row["recall"] == pytest.approx(r)


def test_match_share_and_parity() -> None:
    rng = np.random.default_rng(2)
    preds, _ = random_dataset(rng, 10)
    n = sum(len(p[1]) for p in preds)
    assert match_share(preds, preds) == 1.0 and match_share(preds, preds, symmetric=True) == 1.0
    fewer = [
        (b[1:], s[1:], c[1:]) if len(s) else (b, s, c) for b, s, c in preds
    ]  # drop each image's best box
    dropped = n - sum(len(p[1]) for p in fewer)
    assert match_share(preds, fewer) == pytest.approx((n - dropped) / n)
    assert match_share(fewer, preds) == 1.0
    assert match_share(preds, fewer, symmetric=True) == pytest.approx(2 * (n - dropped) / (2 * n - dropped))
    relabelled = [(b, s, (c + 1) % 3) for b, s, c in preds]
    assert match_share(preds, relabelled) < 0.5  # other classes do not match
    jitter = [(b + 0.5, s + 0.004, c) for b, s, c in preds]
    stats = parity(preds, jitter)
    assert stats.share_a == 1.0 and stats.share_b == 1.0 and stats.matched == n
    worst = min(float(np.diag(box_iou(b, b + 0.5)).min(initial=1.0)) for b, _, _ in preds)
    assert stats.min_iou == pytest.approx(worst) and stats.max_score_diff == pytest.approx(0.004, abs=1e-6)
    empty = [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))]
    assert match_share(empty, empty) == 1.0
    assert match_share(empty, preds[:1]) == 1.0 and match_share(empty, preds[:1], symmetric=True) == 0.0


def test_confusion_matrix() -> None:
    gt = (
        np.array([[0, 0, 100, 100], [200, 200, 260, 300], [400, 0, 450, 50]], dtype=np.float32),
        np.array([0, 1, 2]),
    )
    pred = (
        np.array(
            [[2, 2, 100, 100], [200, 200, 260, 300], [600, 600, 650, 650], [0, 0, 10, 10]], dtype=np.float32
        ),
        np.array([0.9, 0.8, 0.7, 0.1]),  # the last is under conf
        np.array([0, 2, 1, 0]),
    )
    cm = confusion_matrix([pred], [gt], nc=3)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = 1  # true positive
    expected[2, 1] = 1  # scratch predicted as dent
    expected[3, 2] = 1  # dent missed
    expected[1, 3] = 1  # a scratch where there is nothing
    assert np.array_equal(cm, expected)


def test_the_report_confusion_matrix_is_drawn_at_the_serving_threshold() -> None:
    """A low-score false positive counts at ultralytics' 0.001, not at a device's 0.25."""
    import io as _io

    from PIL import Image as _Image

    from visionloop.data.types import Box, ImageRecord, LabelStatus
    from visionloop.training.detection_metrics import confusion_matrix
    from visionloop.training.evaluate import confusion_png, ground_truth

    record = ImageRecord(
        sha256="0" * 64,
        path="a.jpg",
        width=100,
        height=100,
        status=LabelStatus.LABELED,
        boxes=[Box(class_id=0, x1=10, y1=10, x2=40, y2=40)],
        source="s",
        group="a",
    )
    pred = (
        np.array([[10, 10, 40, 40], [60, 60, 90, 90]], dtype=np.float32),
        np.array([0.9, 0.1], dtype=np.float32),
        np.array([0, 0]),
    )
    loose = confusion_matrix([pred], ground_truth([record]), 1, conf=0.001)
    served = confusion_matrix([pred], ground_truth([record]), 1, conf=0.25)
    assert loose.tolist() == [[1, 1], [0, 0]] and served.tolist() == [[1, 0], [0, 0]]
    png = confusion_png([pred], [record], ["scratch"], conf=0.25)
    assert _Image.open(_io.BytesIO(png)).format == "PNG"
