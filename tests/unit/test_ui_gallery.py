"""The status page's false positive / false negative matching and drawing
(ui/gallery.py) on hand-made boxes (xyxy pixels)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.factories import image_bytes
from ui.gallery import (
    FN_COLOUR,
    FP_COLOUR,
    Predicted,
    Truth,
    build_gallery,
    draw_boxes,
    iou,
    match,
)


def test_iou_of_hand_made_boxes() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    # half overlap: intersection 50, union 150
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert iou((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0  # no area


def test_a_good_prediction_matches_and_nothing_is_left_over() -> None:
    m = match([Predicted(0, 0.9, (1, 1, 11, 11))], [Truth(0, (0, 0, 10, 10))])
    assert len(m.matched) == 1 and m.clean
    assert m.matched[0][2] == pytest.approx(81 / 119)


def test_iou_at_the_threshold_matches_and_below_it_does_not() -> None:
    truth = Truth(0, (0, 0, 10, 10))
    # (0, 0, 10, 5): IoU exactly 0.5
    assert match([Predicted(0, 0.8, (0, 0, 10, 5))], [truth]).clean
    below = match([Predicted(0, 0.8, (0, 0, 10, 4.9))], [truth])
    assert below.false_positives == [Predicted(0, 0.8, (0, 0, 10, 4.9))]
    assert below.false_negatives == [truth]


def test_matching_is_per_class() -> None:
    truth = Truth(1, (0, 0, 10, 10))
    m = match([Predicted(0, 0.9, (0, 0, 10, 10))], [truth])
    assert [p.class_id for p in m.false_positives] == [0]
    assert m.false_negatives == [truth]


def test_a_duplicate_prediction_is_a_false_positive_and_the_best_score_matches() -> None:
    truth = Truth(0, (0, 0, 10, 10))
    low, high = Predicted(0, 0.4, (0, 0, 10, 10)), Predicted(0, 0.9, (0, 0, 10, 9))
    m = match([low, high], [truth])
    assert m.matched[0][0] == high
    assert m.false_positives == [low] and not m.false_negatives


def test_each_prediction_takes_the_truth_it_overlaps_most() -> None:
    a, b = Truth(0, (0, 0, 10, 10)), Truth(0, (6, 0, 16, 10))
    m = match([Predicted(0, 0.9, (6, 0, 16, 10)), Predicted(0, 0.8, (0, 0, 10, 10))], [a, b])
    assert {(p.box, t.box) for p, t, _ in m.matched} == {((6, 0, 16, 10), b.box), ((0, 0, 10, 10), a.box)}
    assert m.clean


def test_no_prediction_leaves_every_truth_a_false_negative() -> None:
    truths = [Truth(0, (0, 0, 10, 10)), Truth(0, (20, 20, 30, 30))]
    assert match([], truths).false_negatives == truths
    assert match([Predicted(0, 0.5, (0, 0, 5, 5))], []).false_positives == [Predicted(0, 0.5, (0, 0, 5, 5))]


def _pixel(jpeg: bytes, xy: tuple[int, int]) -> tuple[int, ...]:
    return tuple(Image.open(io.BytesIO(jpeg)).convert("RGB").getpixel(xy))  # type: ignore[arg-type]


def _near(a: tuple[int, ...], b: tuple[int, int, int], tol: int = 60) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def test_draw_boxes_draws_the_outline_where_the_box_is_and_scales_to_the_bounds() -> None:
    white = Image.new("RGB", (200, 100), (255, 255, 255))
    jpeg = draw_boxes(white, [((20, 30, 120, 80), "", FP_COLOUR)], min_side=0)
    out = Image.open(io.BytesIO(jpeg))
    assert out.format == "JPEG" and out.size == (200, 100)
    assert _near(_pixel(jpeg, (70, 30)), FP_COLOUR)  # top edge
    assert _near(_pixel(jpeg, (70, 55)), (255, 255, 255))  # inside stays
    big = draw_boxes(
        Image.new("RGB", (1280, 640), (255, 255, 255)), [((200, 100, 800, 500), "FN x", FN_COLOUR)]
    )
    small = Image.open(io.BytesIO(big))
    assert small.size == (640, 320)
    assert _near(_pixel(big, (250, 150)), (255, 255, 255))
    assert _near(_pixel(big, (101, 150)), FN_COLOUR)  # the left edge, x = 200 scaled by 1/2
    enlarged = draw_boxes(Image.new("RGB", (80, 40), (255, 255, 255)), [((10, 10, 50, 30), "", FP_COLOUR)])
    assert Image.open(io.BytesIO(enlarged)).size == (320, 160)
    assert _near(_pixel(enlarged, (41, 100)), FP_COLOUR)  # the left edge, x = 10 scaled by 4


def test_build_gallery_keeps_the_images_with_errors_worst_first_with_their_names() -> None:
    data = image_bytes(size=(64, 48), seed=1)
    good = [Truth(0, (0, 0, 10, 10))]
    samples = [
        ("good.jpg", data, good),
        ("missed.jpg", data, [Truth(0, (30, 20, 40, 30))]),  # 1 FP + 1 FN
        ("one-error.jpg", data, [Truth(0, (30, 20, 40, 30)), Truth(0, (0, 0, 10, 10))]),
    ]

    def predict(_: bytes) -> list[Predicted]:
        return [Predicted(0, 0.9, (0, 0, 10, 10))]

    g = build_gallery(samples, predict, lambda c: f"class{c}")
    assert g.images == 3
    assert (g.true_positives, g.false_positives, g.false_negatives) == (2, 1, 2)
    assert [i.path for i in g.items] == ["missed.jpg", "one-error.jpg"]
    assert (g.items[0].false_positives, g.items[0].false_negatives) == (1, 1)
    assert Image.open(io.BytesIO(g.items[0].jpeg)).size == (320, 240)  # enlarged to be legible
