"""Evaluation of nodes and bundles through the edge runtime's own code.

A node's ONNX file is run by ``edge_runtime.classifier.OnnxClassifier``; a bundle by
``edge_runtime.bundle.HierarchyBundle`` (the routing and fallback a device runs), so
the figures a gate decides on are those of what is deployed.
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
from PIL import Image

from edge_runtime.bundle import HierarchyBundle, HierarchyResult, Node
from edge_runtime.classifier import OnnxClassifier
from visionloop.hierarchy.dataset import ClassificationDataset, test_records
from visionloop.hierarchy.metrics import (
    ClassifierMetrics,
    HierarchyMetrics,
    classifier_metrics,
    hierarchy_metrics,
)
from visionloop.hierarchy.types import BundleManifest

PARITY_MAX_PROB_DIFF = 0.01  # ONNX against ultralytics' PyTorch predictions
PARITY_MIN_TOP1_AGREEMENT = 0.98


def onnx_probs(model: bytes, classes: list[str], images: list[bytes]) -> np.ndarray:
    """Class probabilities ``(n, nc)`` of the edge runtime's classifier, in ``classes`` order."""
    clf = OnnxClassifier(model, classes)
    return np.stack([clf.probs(b) for b in images]) if images else np.zeros((0, len(classes)), np.float32)


def labels_of(probs: np.ndarray, classes: list[str]) -> list[str]:
    return [classes[int(i)] for i in probs.argmax(axis=1)] if len(probs) else []


def score_node(model: bytes, classes: list[str], dataset: ClassificationDataset) -> ClassifierMetrics:
    """The node's ONNX model on its test split."""
    records, images = test_records(dataset)
    return classifier_metrics(
        [r.label for r in records], labels_of(onnx_probs(model, classes, images), classes), classes
    )


def bgr_arrays(images: list[bytes]) -> list[np.ndarray]:
    """Decoded images as ultralytics expects numpy input: HWC uint8 BGR."""
    return [
        np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))[:, :, ::-1]) for b in images
    ]


def parity_figures(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """How the edge runtime's ONNX probabilities compare with ultralytics' PyTorch ones
    on the same images: the share with the same top class, the largest and the mean
    absolute difference of a probability."""
    if reference.shape != candidate.shape or not len(reference):
        raise ValueError(
            f"parity needs two equal, non-empty arrays, got {reference.shape} and {candidate.shape}"
        )
    diff = np.abs(reference - candidate)
    return {
        "top1_agreement": round(float((reference.argmax(1) == candidate.argmax(1)).mean()), 4),
        "max_prob_diff": round(float(diff.max()), 6),
        "mean_prob_diff": round(float(diff.mean()), 6),
    }


def parity_ok(figures: dict[str, float]) -> bool:
    return (
        figures["max_prob_diff"] <= PARITY_MAX_PROB_DIFF
        and figures["top1_agreement"] >= PARITY_MIN_TOP1_AGREEMENT
    )


def make_bundle(
    manifest: BundleManifest, models: dict[str, bytes], threads: int | None = None
) -> HierarchyBundle:
    """The edge runtime's bundle from a manifest and each node's ONNX bytes (keyed
    ``parent`` and by group); ``threads``: onnxruntime's intra-op threads per node."""
    nodes = {
        key: Node(
            key,
            n.model,
            n.version,
            n.task,
            list(n.classes),
            OnnxClassifier(models[key], list(n.classes), threads),
        )
        for key, n in manifest.nodes.items()
    }
    parent = nodes.pop("parent")
    return HierarchyBundle(parent, nodes, manifest.child_min_conf)


def route_all(bundle: HierarchyBundle, images: list[bytes]) -> list[HierarchyResult]:
    return [bundle.predict(Image.open(io.BytesIO(b))) for b in images]


def end_to_end(
    results: list[HierarchyResult], truth: list[str], group_of: dict[str, str]
) -> tuple[HierarchyMetrics, HierarchyMetrics]:
    """(with the fallback, answering with the child always) from one routing pass."""
    with_fallback = hierarchy_metrics(truth, [r.answer for r in results], group_of)
    always_child = hierarchy_metrics(truth, [r.leaf or r.group for r in results], group_of)
    return with_fallback, always_child


def evaluate_bundle(
    bundle: HierarchyBundle, leaf: ClassificationDataset, group_of: dict[str, str]
) -> tuple[HierarchyMetrics, HierarchyMetrics]:
    records, images = test_records(leaf)
    return end_to_end(route_all(bundle, images), [r.label for r in records], group_of)


def flat_metrics(
    model: bytes, classes: list[str], leaf: ClassificationDataset, group_of: dict[str, str]
) -> HierarchyMetrics:
    """The flat model's leaf answers scored like a bundle's (it never falls back)."""
    records, images = test_records(leaf)
    return hierarchy_metrics(
        [r.label for r in records], labels_of(onnx_probs(model, classes, images), classes), group_of
    )


def bundle_latency(bundle: HierarchyBundle, images: list[bytes], n: int) -> dict[str, float]:
    """Per-image latency of parent + routed child (decode included), after two warm-up
    runs; milliseconds."""
    decoded = [Image.open(io.BytesIO(b)) for b in images]
    for image in decoded[:2]:
        bundle.predict(image)
    times = []
    for i in range(n):
        start = time.perf_counter()
        bundle.predict(Image.open(io.BytesIO(images[i % len(images)])))
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50": round(statistics.median(times), 3),
        "p95": round(times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))], 3),
        "n": float(n),
    }
