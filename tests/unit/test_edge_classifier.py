"""The edge runtime's classifier against ultralytics: the same input tensor as
ultralytics' ``classify_transforms`` (resize of the shorter side with Pillow's bilinear
filter, centre crop, /255) for images smaller, larger and not square, and the same
probabilities as ``YOLO(pt).predict`` for an ONNX export of a trained ``-cls`` model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime.classifier import OnnxClassifier, classify_tensor, compare, expectations
from tests.hierarchy.helpers import CIFAR, tiny_cifar
from visionloop.hierarchy import evaluate
from visionloop.training import classify, yolo

SIZES = [(32, 32), (57, 41), (41, 57), (200, 90), (31, 33), (16, 16), (640, 480)]


def photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A real CIFAR image resized to ``size`` (so it has texture), as RGB."""
    files = sorted((CIFAR / "test" / "ship").iterdir())
    return Image.open(files[seed % len(files)]).convert("RGB").resize(size, Image.Resampling.BICUBIC)


@pytest.mark.parametrize("imgsz", [32, 64])
@pytest.mark.parametrize("size", SIZES)
def test_tensor_equals_ultralytics_classify_transforms(
    size: tuple[int, int], imgsz: int, ultralytics_ready: None
) -> None:
    from ultralytics.data.augment import classify_transforms

    image = photo(size)
    reference = classify_transforms(imgsz)(image).numpy()[None]
    ours = classify_tensor(image, imgsz, imgsz)
    assert ours.shape == reference.shape == (1, 3, imgsz, imgsz) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, reference)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, ultralytics_ready: None
) -> tuple[Path, Path, list[str]]:
    """A yolov8n-cls with the ABD backbone, one epoch on 4 CIFAR classes, and its ONNX export."""
    from visionloop.data.blobstore import LocalBlobStore
    from visionloop.hierarchy.dataset import export_image_folder, ingest
    from visionloop.hierarchy.spec import HierarchySpec

    tmp = tmp_path_factory.mktemp("cls")
    data = tiny_cifar(tmp / "src", train=12, test=4)
    spec = HierarchySpec.model_validate(
        {
            "name": "t",
            "data": {"source": str(data), "val_fraction": 0.25},
            "groups": {"vehicle": {"classes": ["airplane", "ship"]}, "animal": {"classes": ["cat", "frog"]}},
        }
    )
    leaf, _ = ingest(data, spec, LocalBlobStore(tmp / "blobs"))
    folder = export_image_folder(leaf, tmp / "folder")
    outcome = classify.train(folder, classify.ClassifierParams(epochs=1, batch=16), "abd", tmp / "runs")
    onnx_path = yolo.export_onnx(outcome.best, 32, 17, tmp / "export")
    return outcome.best, onnx_path, yolo.class_names_of(outcome.best)


def test_onnx_probabilities_equal_ultralytics_predictions(trained: tuple[Path, Path, list[str]]) -> None:
    weights, onnx_path, names = trained
    images = []
    for i, size in enumerate(SIZES):
        buf = io.BytesIO()
        photo(size, seed=i).save(buf, format="PNG")
        images.append(buf.getvalue())
    clf = OnnxClassifier(onnx_path)
    assert clf.class_names == names and clf.input_size == (32, 32)
    ours = np.stack([clf.probs(b) for b in images])
    theirs = classify.predict_probs(weights, evaluate.bgr_arrays(images), 32)
    figures = evaluate.parity_figures(theirs, ours)
    assert figures["top1_agreement"] == 1.0 and figures["max_prob_diff"] < 1e-4, figures
    assert evaluate.parity_ok(figures)
    assert [c.class_name for c in clf.predict(images[0], top=2)][0] == names[int(theirs[0].argmax())]


def test_self_test_expectations_round_trip(trained: tuple[Path, Path, list[str]]) -> None:
    _, onnx_path, _ = trained
    clf = OnnxClassifier(onnx_path)
    images = {
        f"s{i}.png": b
        for i, b in enumerate([p.read_bytes() for p in sorted((CIFAR / "test" / "cat").iterdir())[:3]])
    }
    expected = expectations(clf, images)
    assert all(compare(expected[n], expectations(clf, {n: b})[n]) == [] for n, b in images.items())
    wrong = [[float((expected["s0.png"][0][0] + 1) % 4), 0.99], [expected["s0.png"][0][0], 0.01]]
    assert compare(wrong, expected["s0.png"])  # another top class, clearly: a problem
