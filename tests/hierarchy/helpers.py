"""Shared parts of the hierarchy tests: tiny ONNX classifiers whose answers are set by an
image's mean colour (so a test chooses the route and the probabilities), a bundle of
them, solid-colour images, and a small copy of the bundled cifar10-tree set."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from edge_runtime.bundle import HierarchyBundle, Node
from edge_runtime.classifier import OnnxClassifier
from tests.conftest import REPO_ROOT
from visionloop.hierarchy.types import BundleManifest, BundleNode

CIFAR = REPO_ROOT / "data" / "cifar10-tree"
GROUPS = {"vehicle": ["airplane", "ship"], "animal": ["cat", "frog"]}


def colour_classifier(weights: np.ndarray, bias: np.ndarray | None = None, size: int = 32) -> bytes:
    """An ONNX classifier ``softmax(mean_rgb @ weights + bias)``: input (1, 3, size, size)
    float32 RGB in [0, 1], output (1, nc) probabilities, like an exported ``-cls`` model."""
    w = np.asarray(weights, dtype=np.float32)
    b = np.zeros(w.shape[1], np.float32) if bias is None else np.asarray(bias, dtype=np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["mean", "w"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "colour",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, w.shape[1]])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (32, 32), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format=fmt)
    return buf.getvalue()


# parent [animal, vehicle]: red means vehicle, green animal; each child: with no blue its
# first class (0.73), the bluer the surer of its second: P(second) = sigmoid(8 b - 1)
PARENT_W = np.array([[-8.0, 8.0], [8.0, -8.0], [0.0, 0.0]])
CHILD_W = np.array([[0.0, 0.0], [0.0, 0.0], [-4.0, 4.0]])
CHILD_B = np.array([1.0, 0.0])


def colour_models() -> dict[str, bytes]:
    child = colour_classifier(CHILD_W, CHILD_B)
    return {"parent": colour_classifier(PARENT_W), "vehicle": child, "animal": child}


def manifest(
    models: dict[str, bytes], child_min_conf: float = 0.6, vehicle_classes: list[str] | None = None
) -> BundleManifest:
    import hashlib

    def node(key: str, classes: list[str]) -> BundleNode:
        return BundleNode(
            model=f"toy-{key}",
            version="1",
            classes=classes,
            onnx_sha256=hashlib.sha256(models[key]).hexdigest(),
            gate_passed=True,
        )

    return BundleManifest(
        hierarchy="toy",
        groups=GROUPS,
        parent=node("parent", ["animal", "vehicle"]),
        children={
            "vehicle": node("vehicle", vehicle_classes or GROUPS["vehicle"]),
            "animal": node("animal", GROUPS["animal"]),
        },
        child_min_conf=child_min_conf,
        leaf_dataset_version_id="0" * 64,
    )


def edge_bundle(models: dict[str, bytes], child_min_conf: float = 0.6) -> HierarchyBundle:
    m = manifest(models, child_min_conf)
    nodes = {
        k: Node(k, n.model, n.version, "classify", n.classes, OnnxClassifier(models[k], n.classes))
        for k, n in m.nodes.items()
    }
    parent = nodes.pop("parent")
    return HierarchyBundle(parent, nodes, child_min_conf)


def tiny_cifar(
    root: Path, train: int = 10, test: int = 4, groups: dict[str, list[str]] | None = None
) -> Path:
    """``train`` and ``test`` images of each class of ``groups`` copied from the bundled set."""
    for split, n in (("train", train), ("test", test)):
        for classes in (groups or GROUPS).values():
            for c in classes:
                target = root / split / c
                target.mkdir(parents=True, exist_ok=True)
                for f in sorted((CIFAR / split / c).iterdir())[:n]:
                    shutil.copy(f, target / f.name)
    return root


METAL_TAGS = REPO_ROOT / "data" / "metal-tags"


def tiny_metal_tags(root: Path, bad: int = 32, good: int = 4) -> Path:
    """The first ``bad`` labelled photos with scratches and ``good`` without, copied from
    the bundled metal-tags set with their rows of its ``labels.csv`` (the Ground Truth
    CSV the detection importer reads)."""
    import csv

    with (METAL_TAGS / "labels.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    by_folder: dict[str, list[dict[str, str]]] = {"bad": [], "good": []}
    for row in sorted(rows, key=lambda r: r["source_ref"]):
        folder, name = row["source_ref"].rsplit("/", 2)[-2:]
        if (METAL_TAGS / folder / name).is_file():
            by_folder[folder].append(row)
    chosen = by_folder["bad"][:bad] + by_folder["good"][:good]
    for row in chosen:
        folder, name = row["source_ref"].rsplit("/", 2)[-2:]
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(METAL_TAGS / folder / name, root / folder / name)
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(chosen)
    return root


def detector_manifest(
    models: dict[str, bytes],
    detector_classes: list[str],
    declared: list[str] | None = None,
    min_conf: float | None = 0.1,
    task: str = "detect",
) -> BundleManifest:
    """A toy bundle whose ``vehicle`` child is a detector (``models["vehicle"]``, with the
    classes ``detector_classes``; the group declares ``declared``, default the same)
    and whose ``animal`` child is the colour classifier."""
    import hashlib

    base = manifest(models)
    vehicle = BundleNode(
        model="toy-detector",
        version="1",
        task=task,  # type: ignore[arg-type]
        classes=detector_classes,
        onnx_sha256=hashlib.sha256(models["vehicle"]).hexdigest(),
        gate_passed=True,
        conf=0.05,
        iou=0.7,
        min_conf=min_conf,
    )
    return base.model_copy(
        update={
            "groups": {"vehicle": declared or detector_classes, "animal": GROUPS["animal"]},
            "tasks": {"vehicle": "detect", "animal": "classify"},
            "children": {"vehicle": vehicle, "animal": base.children["animal"]},
        }
    )
