"""Evaluation of nodes and bundles through the edge runtime's own code.

A node's ONNX file is run by ``edge_runtime.classifier.OnnxClassifier``; a bundle by
``edge_runtime.bundle.HierarchyBundle`` (the routing and fallback a device runs), so
the figures a gate decides on are those of what is deployed.

A bundle is measured on the leaf test split in one routing pass: hierarchical figures
on the classifier groups' images (an image the parent sends to a detector group is
answered with that group), and, per detector group, the routing, fallbacks and the mAP
of the boxes the bundle gives on that group's images (``DetectorRoute``).
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from edge_runtime.bundle import HierarchyBundle, HierarchyResult, Node
from edge_runtime.classifier import OnnxClassifier
from edge_runtime.detector import OnnxDetector
from visionloop.hierarchy.dataset import ClassificationDataset, ClassRecord, test_records
from visionloop.hierarchy.metrics import (
    ClassifierMetrics,
    HierarchyMetrics,
    classifier_metrics,
    hierarchy_metrics,
)
from visionloop.hierarchy.types import BundleManifest, BundleNode, DetectorRoute
from visionloop.training import detection_metrics
from visionloop.training.evaluate import EVAL_CONF, EVAL_IOU

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


def edge_node(key: str, node: BundleNode, model: bytes, threads: int | None = None) -> Node:
    """The edge runtime's node for a pinned version (a classifier or a detector)."""
    if node.task == "detect":
        detector = OnnxDetector(
            model,
            list(node.classes),
            conf=0.25 if node.conf is None else node.conf,
            iou=0.7 if node.iou is None else node.iou,
            threads=threads,
        )
        return Node(
            key,
            node.model,
            node.version,
            "detect",
            list(node.classes),
            detector=detector,
            min_conf=node.min_conf,
        )
    classifier = OnnxClassifier(model, list(node.classes), threads)
    return Node(
        key, node.model, node.version, "classify", list(node.classes), classifier, min_conf=node.min_conf
    )


def make_bundle(
    manifest: BundleManifest, models: dict[str, bytes], threads: int | None = None
) -> HierarchyBundle:
    """The edge runtime's bundle from a manifest and each node's ONNX bytes (keyed
    ``parent`` and by group); ``threads``: onnxruntime's intra-op threads per node."""
    nodes = {key: edge_node(key, n, models[key], threads) for key, n in manifest.nodes.items()}
    parent = nodes.pop("parent")
    return HierarchyBundle(parent, nodes, manifest.child_min_conf)


def route_all(bundle: HierarchyBundle, images: list[bytes]) -> list[HierarchyResult]:
    return [bundle.predict(Image.open(io.BytesIO(b))) for b in images]


def detector_groups(bundle: HierarchyBundle) -> set[str]:
    return {g for g, child in bundle.children.items() if child.detector is not None}


def end_to_end(
    results: list[HierarchyResult],
    truth: list[str],
    group_of: dict[str, str],
    detectors: Collection[str] = (),
) -> tuple[HierarchyMetrics, HierarchyMetrics]:
    """(with the fallback, answering with the child always) from one routing pass, on
    the images whose truth is a classifier child's class (``group_of``); an image
    routed to a detector group is answered with that group."""
    kept = [(r, t) for r, t in zip(results, truth, strict=True) if t in group_of]

    def answer(r: HierarchyResult, always_child: bool) -> str:
        if r.group in detectors:
            return r.group
        return (r.leaf or r.group) if always_child else r.answer

    labels = [t for _, t in kept]
    with_fallback = hierarchy_metrics(labels, [answer(r, False) for r, _ in kept], group_of)
    always_child = hierarchy_metrics(labels, [answer(r, True) for r, _ in kept], group_of)
    return with_fallback, always_child


def ground_truth(record: ClassRecord) -> detection_metrics.GroundTruth:
    boxes = record.boxes or []
    return (
        np.array([[b.x1, b.y1, b.x2, b.y2] for b in boxes], dtype=np.float32).reshape(-1, 4),
        np.array([b.class_id for b in boxes], dtype=np.int64),
    )


def _declared_ids(detector: OnnxDetector, declared: list[str]) -> np.ndarray:
    """The detector's class ids -> ids into the group's declared classes (-1: not declared)."""
    return np.array([declared.index(c) if c in declared else -1 for c in detector.class_names], np.int64)


NO_BOXES: detection_metrics.Prediction = (
    np.zeros((0, 4), np.float32),
    np.zeros(0, np.float32),
    np.zeros(0, np.int64),
)


def detector_route(
    bundle: HierarchyBundle,
    group: str,
    declared: list[str],
    records: list[ClassRecord],
    images: list[bytes],
    results: list[HierarchyResult],
) -> DetectorRoute:
    """A detector group end to end (``DetectorRoute``): its child predicts as
    ultralytics' validator does (conf 0.001, IoU 0.7) on the group's test images; the
    bundle's boxes are those predictions on the images the parent routed to the group."""
    child = bundle.children[group]
    assert child.detector is not None
    ids = _declared_ids(child.detector, declared)
    own = [i for i, r in enumerate(records) if r.label == group]
    child_preds, bundle_preds, fallbacks = [], [], 0
    for i in own:
        boxes, scores, class_ids = child.detector.predict_arrays(images[i], conf=EVAL_CONF, iou=EVAL_IOU)
        pred = (boxes, scores, ids[class_ids] if len(class_ids) else class_ids)
        child_preds.append(pred)
        routed = results[i].group == group
        bundle_preds.append(pred if routed else NO_BOXES)
        fallbacks += routed and results[i].fallback
    truth = [ground_truth(records[i]) for i in own]
    alone = detection_metrics.evaluate(child_preds, truth, declared)
    through = detection_metrics.evaluate(bundle_preds, truth, declared)
    routed_share = sum(results[i].group == group for i in own) / len(own) if own else 0.0
    n_routed = sum(results[i].group == group for i in own)
    return DetectorRoute(
        group=group,
        images=len(own),
        routed=round(routed_share, 4),
        fallback_rate=round(fallbacks / n_routed, 4) if n_routed else 0.0,
        map50=round(through.map50, 4),
        map50_95=round(through.map50_95, 4),
        child_map50=round(alone.map50, 4),
        child_map50_95=round(alone.map50_95, 4),
        routed_in=sum(
            r.group == group and rec.label != group for r, rec in zip(results, records, strict=True)
        ),
    )


@dataclass
class BundleFigures:
    """A bundle on a leaf test split: hierarchical figures on the classifier groups'
    images (with the fallback, and answering with the child always), and each detector
    group's route."""

    end_to_end: HierarchyMetrics
    no_fallback: HierarchyMetrics
    detectors: dict[str, DetectorRoute] = field(default_factory=dict)


def evaluate_bundle(
    bundle: HierarchyBundle, leaf: ClassificationDataset, declared: dict[str, list[str]]
) -> BundleFigures:
    """``declared``: the hierarchy's groups and their classes (a detector group's images
    carry the group as their label)."""
    records, images = test_records(leaf)
    results = route_all(bundle, images)
    detectors = detector_groups(bundle) & set(declared)
    group_of = {c: g for g, classes in declared.items() if g not in detectors for c in classes}
    with_fallback, always_child = end_to_end(results, [r.label for r in records], group_of, detectors)
    routes = {g: detector_route(bundle, g, declared[g], records, images, results) for g in sorted(detectors)}
    return BundleFigures(with_fallback, always_child, routes)


def flat_metrics(
    model: bytes, classes: list[str], leaf: ClassificationDataset, group_of: dict[str, str]
) -> HierarchyMetrics:
    """The flat model's leaf answers scored like a bundle's (it never falls back), on the
    images whose truth is a classifier child's class (``group_of``); a detector group's
    label it answers counts as that group."""
    records, images = test_records(leaf)
    kept = [i for i, r in enumerate(records) if r.label in group_of]
    answers = labels_of(onnx_probs(model, classes, [images[i] for i in kept]), classes)
    return hierarchy_metrics([records[i].label for i in kept], answers, group_of)


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
