"""Node and bundle versions made ready for the model channel (the same signed channel
as detectors: ``visionloop.deploy.channel``).

A classifier node goes out as a ``classify`` release (``model.onnx``), a detector
child as a ``detect`` release (the detection use cases' ``build_release``); a bundle
as a ``hierarchy`` release that holds every node's ONNX file, so one signed manifest
covers everything a device needs. The self-test expectations are computed here with
the edge runtime's own classifier, detector and bundle code.
"""

from __future__ import annotations

from typing import Any

from edge_runtime import classifier as cls
from edge_runtime.bundle import HierarchyBundle
from visionloop.config import ServingThresholds
from visionloop.deploy.channel import Release
from visionloop.deploy.release import build_release, sample_name
from visionloop.hierarchy.dataset import ClassRecord
from visionloop.hierarchy.types import BundleManifest, BundleNode
from visionloop.training.types import ModelBlob

MODEL_FILE = "model.onnx"
PARENT_FILE = "parent.onnx"


def child_file(group: str) -> str:
    return f"children/{group}.onnx"


def classifier_release(
    model_name: str,
    version: str,
    onnx: ModelBlob,
    samples: list[bytes],
    uncertain_high: float,
    fields: dict[str, Any],
) -> Release:
    """``models/<model>/<version>/``: ``model.onnx``, samples, and a ``classify`` manifest."""
    sample_files = {sample_name(b): b for b in samples}
    expected = cls.expectations(cls.OnnxClassifier(onnx.data, onnx.class_names), sample_files)
    return Release(
        model=model_name,
        version=version,
        files={MODEL_FILE: onnx.data, **sample_files},
        model_file=MODEL_FILE,
        fields={
            "task": "classify",
            "classes": onnx.class_names,
            "input_size": [onnx.imgsz, onnx.imgsz],
            "opset": onnx.opset,
            "thresholds": {"uncertain_low": 0.0, "uncertain_high": uncertain_high},
            "self_test": {"expected": {MODEL_FILE: expected}},
            **fields,
        },
    )


def self_test_samples(
    records: list[ClassRecord],
    images: list[bytes],
    label_group: dict[str, str],
    n: int,
    group: str | None = None,
) -> list[bytes]:
    """Up to ``n`` test images for a self-test, taken in turn from each group (so every
    child of a bundle is exercised), or from ``group`` alone."""
    by_group: dict[str, list[bytes]] = {}
    for r, data in zip(records, images, strict=True):
        g = label_group.get(r.label, r.label)
        if group is None or g == group:
            by_group.setdefault(g, []).append(data)
    out: list[bytes] = []
    queues = list(by_group.values())
    while len(out) < n and any(queues):
        for queue in queues:
            if queue and len(out) < n:
                out.append(queue.pop(0))
    return out


def node_release(
    node: BundleNode,
    onnx: ModelBlob,
    samples: list[bytes],
    uncertain_high: float,
    fields: dict[str, Any],
    thresholds: ServingThresholds | None = None,
) -> Release:
    """A node version's own release: ``classify`` for a classifier, ``detect`` with the
    group's serving ``thresholds`` for a detector child."""
    if node.task == "classify":
        return classifier_release(node.model, node.version, onnx, samples, uncertain_high, fields)
    return build_release(
        node.model, node.version, onnx, None, samples, thresholds or ServingThresholds(), fields
    )


def _entry(file: str, node: BundleNode) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file": file,
        "model": node.model,
        "version": node.version,
        "task": node.task,
        "classes": node.classes,
    }
    if node.min_conf is not None:
        entry["min_conf"] = node.min_conf
    if node.task == "detect":
        entry.update({k: v for k, v in (("conf", node.conf), ("iou", node.iou)) if v is not None})
    return entry


def hierarchy_section(manifest: BundleManifest) -> dict[str, Any]:
    """The manifest's ``hierarchy`` section (the layout is in ``edge_runtime/bundle.py``)."""
    section = {
        "name": manifest.hierarchy,
        "groups": manifest.groups,
        "parent": _entry(PARENT_FILE, manifest.parent),
        "children": {g: _entry(child_file(g), c) for g, c in manifest.children.items()},
        "child_min_conf": manifest.child_min_conf,
    }
    if manifest.tasks:
        section["tasks"] = manifest.tasks
    return section


def bundle_release(
    bundle_model: str,
    version: str,
    manifest: BundleManifest,
    models: dict[str, bytes],
    bundle: HierarchyBundle,
    samples: list[bytes],
    uncertain_high: float,
    fields: dict[str, Any],
) -> Release:
    """``models/<bundle model>/<version>/``: ``parent.onnx``, ``children/<group>.onnx``,
    samples, and a ``hierarchy`` manifest pinning each node's model and version.
    ``bundle`` is the edge runtime's bundle built on the same bytes (the self-test)."""
    sample_files = {sample_name(b): b for b in samples}
    files = {PARENT_FILE: models["parent"], **{child_file(g): models[g] for g in manifest.children}}
    return Release(
        model=bundle_model,
        version=version,
        files={**files, **sample_files},
        model_file=PARENT_FILE,
        fields={
            "task": "hierarchy",
            "classes": [c for g in manifest.groups.values() for c in g],
            "hierarchy": hierarchy_section(manifest),
            "thresholds": {"uncertain_low": 0.0, "uncertain_high": uncertain_high},
            "self_test": {"expected": {"bundle": bundle.expectations(sample_files)}},
            "leaf_dataset_version_id": manifest.leaf_dataset_version_id,
            **fields,
        },
    )
