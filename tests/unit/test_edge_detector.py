"""The edge detector: NMS, decoding, letterbox geometry, isolation, and parity with
ultralytics' own predictions on the same ONNX file (the ABD YOLOv8n exported at 320)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime import detector as det_mod
from edge_runtime.detector import Detection, OnnxDetector, decode_yolo, nms, parse_names
from edge_runtime.preprocess import Letterbox, letterbox, resize_bilinear
from tests.conftest import METAL_TAGS, REPO_ROOT
from tests.factories import image_bytes

IMGSZ = 320
CONF = 0.05
IOU = 0.7


def brute_force_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    def pair_iou(a: np.ndarray, b: np.ndarray) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    keep: list[int] = []
    for i in sorted(range(len(scores)), key=lambda k: -scores[k]):
        if all(pair_iou(boxes[i], boxes[k]) <= iou for k in keep):
            keep.append(i)
    return keep


def random_boxes(rng: np.random.Generator, n: int, size: float = 100.0) -> np.ndarray:
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(5, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


# --- pure numpy parts ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("iou", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(seed: int, iou: float) -> None:
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 150)
    scores = rng.permutation(150).astype(np.float64) / 150  # distinct scores: a unique answer
    keep = nms(boxes, scores, iou)
    assert keep.tolist() == brute_force_nms(boxes, scores, iou)
    assert np.all(np.diff(scores[keep]) <= 0)


def test_nms_matches_torchvision() -> None:
    import torch
    import torchvision

    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 300).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    ref = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.6).numpy()
    assert nms(boxes, scores, 0.6).tolist() == ref.tolist()


def test_nms_edge_cases() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    assert nms(np.array([[0, 0, 10, 10]]), np.array([0.3]), 0.5).tolist() == [0]
    same = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    assert nms(same, np.array([0.2, 0.9]), 0.99).tolist() == [1]  # IoU 1 > 0.99


def yolo_output(rows: list[tuple[float, float, float, float, int, float]], nc: int = 3) -> np.ndarray:
    """(1, 4 + nc, N) from (cx, cy, w, h, class, score) rows; the other classes score 0.01."""
    out = np.full((1, 4 + nc, len(rows)), 0.01, dtype=np.float32)
    for j, (cx, cy, w, h, c, s) in enumerate(rows):
        out[0, :4, j] = (cx, cy, w, h)
        out[0, 4 + c, j] = s
    return out


def test_decode_yolo_hand_made() -> None:
    out = yolo_output(
        [
            (50, 50, 20, 40, 0, 0.9),  # kept: xyxy 40, 30, 60, 70
            (51, 50, 20, 40, 0, 0.8),  # same class, IoU ~0.9 with the first: suppressed
            (51, 50, 20, 40, 1, 0.7),  # other class, same place: kept (class-aware NMS)
            (200, 100, 10, 10, 2, 0.25),  # exactly at conf: dropped (strictly above only)
            (200, 200, 30, 10, 2, 0.3),  # kept
        ]
    )
    boxes, scores, classes = decode_yolo(out, conf=0.25, iou=0.7, max_det=300)
    assert classes.tolist() == [0, 1, 2]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.3], rtol=1e-6)
    np.testing.assert_allclose(boxes[0], [40, 30, 60, 70])
    np.testing.assert_allclose(boxes[2], [185, 195, 215, 205])
    assert boxes.dtype == np.float32 and scores.dtype == np.float32 and classes.dtype == np.int64

    _, _, agnostic = decode_yolo(out, conf=0.25, iou=0.7, max_det=300, agnostic=True)
    assert agnostic.tolist() == [0, 2]
    _, top, _ = decode_yolo(out, conf=0.25, iou=0.7, max_det=2)
    np.testing.assert_allclose(top, [0.9, 0.7], rtol=1e-6)
    assert decode_yolo(out, conf=0.95, iou=0.7, max_det=300)[0].shape == (0, 4)
    # multi-label (the validator's decoding): a candidate also counts for a second class above conf
    two = out.copy()
    two[0, 4 + 2, 0] = 0.5
    _, ml_scores, ml_classes = decode_yolo(two, conf=0.25, iou=0.7, max_det=300, multi_label=True)
    assert ml_classes.tolist() == [0, 1, 2, 2]
    np.testing.assert_allclose(ml_scores, [0.9, 0.7, 0.5, 0.3], rtol=1e-6)
    assert decode_yolo(two, conf=0.25, iou=0.7, max_det=300)[2].tolist() == [0, 1, 2]
    # the batch dimension is optional
    assert decode_yolo(out[0], conf=0.25, iou=0.7, max_det=300)[2].tolist() == [0, 1, 2]


def test_decode_yolo_caps_boxes_into_nms(monkeypatch: pytest.MonkeyPatch) -> None:
    out = yolo_output([(10 + 40 * k, 10, 20, 20, 0, 0.3 + 0.1 * k) for k in range(5)])
    monkeypatch.setattr(det_mod, "MAX_NMS", 2)
    _, scores, _ = decode_yolo(out, conf=0.1, iou=0.7, max_det=300)
    np.testing.assert_allclose(scores, [0.7, 0.6], rtol=1e-6)


def test_parse_names() -> None:
    assert parse_names("{0: 'tag', 1: 'scratch'}") == ["tag", "scratch"]
    assert parse_names("{0: 'a', 2: 'c'}") == ["a", "class_1", "c"]
    assert parse_names(None) is None
    assert parse_names("not python") is None


# --- letterbox ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [(450, 300), (300, 450), (640, 200), (100, 150), (1000, 37), (320, 320)])
def test_letterbox_geometry_roundtrip(size: tuple[int, int]) -> None:
    img = Image.open(io.BytesIO(image_bytes(size=size, seed=3)))
    tensor, geo = letterbox(img, IMGSZ, IMGSZ)
    assert tensor.shape == (1, 3, IMGSZ, IMGSZ) and tensor.dtype == np.float32
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0
    w, h = size
    boxes = np.array([[0, 0, w, h], [w * 0.1, h * 0.2, w * 0.7, h * 0.9]], dtype=np.float32)
    inp = geo.to_input(boxes)
    new_w, new_h = geo.resized_size
    np.testing.assert_allclose(
        inp[0], [geo.pad_x, geo.pad_y, geo.pad_x + new_w, geo.pad_y + new_h], atol=1e-3
    )
    np.testing.assert_allclose(geo.to_original(inp), boxes, atol=1e-3)
    # the padding is grey 114 and the image sits inside it
    pad = np.float32(114 / 255)
    if geo.pad_y >= 1:
        assert np.all(tensor[0, :, 0, :] == pad)
    if geo.pad_x >= 1:
        assert np.all(tensor[0, :, :, 0] == pad)


def test_to_original_clips() -> None:
    geo = Letterbox(scale=0.5, pad_x=0, pad_y=10, width=200, height=100)
    out = geo.to_original(np.array([[-5, 0, 150, 80]]))
    np.testing.assert_allclose(out, [[0, 0, 200, 100]])


@pytest.mark.parametrize("size", [(450, 300), (300, 450), (640, 200), (100, 150), (1000, 37)])
def test_letterbox_equals_ultralytics(size: tuple[int, int], ultralytics_ready: None) -> None:
    """Bit-exact with ultralytics' LetterBox (cv2.resize INTER_LINEAR, then grey padding)."""
    import cv2
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(sum(size))
    rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    ref = LetterBox((IMGSZ, IMGSZ), auto=False, stride=32)(image=np.ascontiguousarray(rgb[..., ::-1]))
    tensor, geo = letterbox(Image.fromarray(rgb), IMGSZ, IMGSZ)
    mine = np.round(tensor[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    assert np.array_equal(mine, ref[..., ::-1])
    new_w, new_h = geo.resized_size
    assert np.array_equal(resize_bilinear(rgb, new_w, new_h), cv2.resize(rgb, (new_w, new_h)))


def test_edge_runtime_imports_no_heavy_framework() -> None:
    code = (
        "import edge_runtime.detector, edge_runtime.preprocess, sys; "
        "bad = {'zenml', 'torch', 'ultralytics', 'cv2'} & set(sys.modules); assert not bad, bad"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


# --- the ONNX model -----------------------------------------------------------------


@pytest.fixture(scope="module")
def detector(abd_onnx: Path) -> OnnxDetector:
    return OnnxDetector(abd_onnx, conf=CONF, iou=IOU, threads=2)


def parity_images() -> list[tuple[str, Image.Image]]:
    files = sorted(METAL_TAGS.glob("*/*.jpg"))[:8]
    images = [(f.name, Image.open(f).convert("RGB")) for f in files]
    base = images[3][1]
    images.append(("portrait-300x450", base.transpose(Image.Transpose.ROTATE_90).resize((300, 450))))
    images.append(("wide-640x200", base.resize((640, 200), Image.Resampling.BILINEAR)))
    images.append(("small-150x100", base.resize((150, 100), Image.Resampling.BILINEAR)))
    images.append(("synthetic-300x450", Image.open(io.BytesIO(image_bytes(size=(300, 450), seed=5)))))
    return images


def test_detector_reads_model(detector: OnnxDetector, abd_onnx: Path) -> None:
    assert detector.input_size == (IMGSZ, IMGSZ)
    assert len(detector.class_names) == 147 and detector.class_names[0] == "Atom"
    named = OnnxDetector(abd_onnx.read_bytes(), class_names=[f"c{i}" for i in range(147)])
    assert named.class_name(3) == "c3" and named.class_name(500) == "class_500"
    tensor, geo = detector.prepare(Image.new("RGB", (450, 300), (90, 90, 90)))
    assert tensor.shape == (1, 3, IMGSZ, IMGSZ)
    assert detector.run(tensor).shape == (1, 4 + 147, 2100)
    assert (geo.width, geo.height) == (450, 300)


def test_detector_predict_and_bytes(detector: OnnxDetector) -> None:
    path = sorted(METAL_TAGS.glob("*/*.jpg"))[3]
    data = path.read_bytes()
    from_bytes = detector.predict_arrays(data)
    from_image = detector.predict_arrays(Image.open(io.BytesIO(data)))
    for a, b in zip(from_bytes, from_image, strict=True):
        assert np.array_equal(a, b)
    dets = detector.predict(data)
    assert dets and all(isinstance(d, Detection) for d in dets)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    assert all(d.score > CONF for d in dets)
    first = dets[0].to_dict()
    assert set(first) == {"class_id", "class_name", "score", "box"} and len(first["box"]) == 4
    assert first["class_name"] == detector.class_names[first["class_id"]]
    x1, y1, x2, y2 = dets[0].box
    assert 0 <= x1 <= x2 <= 450 and 0 <= y1 <= y2 <= 300
    assert detector.predict(data, conf=0.99) == []


def test_parity_with_ultralytics_onnx(detector: OnnxDetector, abd_onnx: Path) -> None:
    from ultralytics import YOLO

    from visionloop.training.detection_metrics import box_iou, parity

    model = YOLO(str(abd_onnx), task="detect")
    ours, theirs = [], []
    for name, img in parity_images():
        res = model.predict(img, imgsz=IMGSZ, conf=CONF, iou=IOU, verbose=False)[0].boxes
        ref = (res.xyxy.numpy(), res.conf.numpy(), res.cls.numpy().astype(np.int64))
        got = detector.predict_arrays(img)
        theirs.append(ref)
        ours.append(got)
        if len(ref[0]) == len(got[0]):  # same detections in the same order
            assert np.array_equal(ref[2], got[2]), name
            assert np.abs(ref[1] - got[1]).max(initial=0) <= 0.01, name
            if len(ref[0]):
                assert np.diag(box_iou(ref[0], got[0])).min() > 0.98, name
    stats = parity(theirs, ours, iou=0.5)
    print(f"\nONNX parity vs ultralytics: {stats.to_dict()}")
    assert stats.n_a > 50  # the check is not vacuous
    assert stats.share_a >= 0.95 and stats.share_b >= 0.95
    assert stats.min_iou > 0.98
    assert stats.max_score_diff <= 0.01


def test_multi_label_decoding_and_metrics_reproduce_model_val(
    detector: OnnxDetector, abd_onnx: Path, tmp_path: Path
) -> None:
    """End to end against ``model.val()``: the validator's image loading (long side to
    imgsz with cv2, ceil), multi-label NMS at conf 0.001, IoU in the letterboxed frame.
    The ground truth is the model's own jittered detections, for a non-trivial mAP."""
    import cv2
    import yaml
    from ultralytics import YOLO

    from visionloop.training.detection_metrics import evaluate

    rng = np.random.default_rng(0)
    root = tmp_path / "ds"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    val_detector = OnnxDetector(abd_onnx, conf=0.001, iou=IOU, multi_label=True, threads=2)
    preds, gts = [], []
    for path in sorted(METAL_TAGS.glob("*/*.jpg"))[2:8]:
        shutil.copyfile(path, root / "images" / "val" / path.name)
        boxes, _, classes = detector.predict_arrays(path.read_bytes(), conf=0.2)
        h0, w0 = 300, 450
        boxes = np.clip(boxes + rng.normal(0, 3, boxes.shape), 0, [w0, h0, w0, h0])
        norm = np.stack(
            [
                (boxes[:, 0] + boxes[:, 2]) / 2 / w0,
                (boxes[:, 1] + boxes[:, 3]) / 2 / h0,
                (boxes[:, 2] - boxes[:, 0]) / w0,
                (boxes[:, 3] - boxes[:, 1]) / h0,
            ],
            1,
        ).round(6)
        lines = [
            f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, (x, y, w, h) in zip(classes, norm, strict=True)
        ]
        (root / "labels" / "val" / f"{path.stem}.txt").write_text("\n".join(lines) + "\n")
        # the validator's loading: long side to imgsz (ceil), cv2 bilinear, then the letterbox
        bgr = cv2.imread(str(path))
        r = IMGSZ / max(bgr.shape[:2])
        w, h = min(int(np.ceil(w0 * r)), IMGSZ), min(int(np.ceil(h0 * r)), IMGSZ)
        small = Image.fromarray(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1])
        tensor, geo = val_detector.prepare(small)
        preds.append(val_detector.decode(val_detector.run(tensor)))  # letterboxed-frame boxes
        xyxy = np.concatenate([norm[:, :2] - norm[:, 2:] / 2, norm[:, :2] + norm[:, 2:] / 2], 1)
        gts.append((xyxy * [w, h, w, h] + [geo.pad_x, geo.pad_y, geo.pad_x, geo.pad_y], classes))
    names = detector.class_names
    data = {"path": str(root), "train": "images/val", "val": "images/val", "names": dict(enumerate(names))}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    res = YOLO(str(abd_onnx), task="detect").val(
        data=str(root / "data.yaml"),
        imgsz=IMGSZ,
        batch=1,
        conf=0.001,
        iou=IOU,
        plots=False,
        verbose=False,
        workers=0,
        project=str(tmp_path / "runs"),
    )
    m = evaluate(preds, gts, names)
    print(
        f"\nmodel.val(): P {res.box.mp:.4f} R {res.box.mr:.4f} mAP50 {res.box.map50:.4f} mAP {res.box.map:.4f}"
    )
    print(f"evaluate():  P {m.precision:.4f} R {m.recall:.4f} mAP50 {m.map50:.4f} mAP {m.map50_95:.4f}")
    assert 0.2 < m.map50 < 0.995  # non-trivial
    assert m.map50 == pytest.approx(res.box.map50, abs=1e-4)
    assert m.map50_95 == pytest.approx(res.box.map, abs=1e-4)
    assert m.precision == pytest.approx(res.box.mp, abs=1e-4)
    assert m.recall == pytest.approx(res.box.mr, abs=1e-4)


def test_an_image_too_large_is_refused_before_decoding() -> None:
    from edge_runtime.detector import ImageTooLarge, open_image

    out = io.BytesIO()
    Image.new("1", (8000, 6000)).save(out, format="PNG")  # 48 Mpx in a few KB
    data = out.getvalue()
    assert len(data) < 100_000
    with pytest.raises(ImageTooLarge, match="8000x6000"):
        open_image(data)
    assert open_image(data, max_pixels=50_000_000).size == (8000, 6000)


def test_self_test_matches_any_box_at_the_same_place_with_a_close_score() -> None:
    """A poorly trained model gives several full-image boxes (clipped after NMS) with
    other scores; each must find its own counterpart, not only the first at that place."""
    from edge_runtime.selftest import compare

    full = [0.0, 0.0, 0.0, 160.0, 160.0]
    expected = [full + [1.0], full + [1.0], [0.0, 10.0, 10.0, 50.0, 50.0, 0.9], full + [0.351]]
    assert compare(expected, list(expected), conf=0.25) == []
    moved = [full + [1.0], full + [1.0], [0.0, 10.0, 10.0, 50.0, 50.0, 0.9], full + [0.6]]
    problems = compare(expected, moved, conf=0.25)
    assert len(problems) == 2 and all("score" in p for p in problems)  # 0.351 lost, 0.6 unexpected
