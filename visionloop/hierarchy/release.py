"""Node and bundle versions made ready for the model channel (the same signed channel
as detectors: ``visionloop.deploy.channel``).

A classifier node goes out as a ``classify`` release (``model.onnx``); a bundle as a
``hierarchy`` release that holds every node's ONNX file, so one signed manifest
covers everything a device needs. The self-test expectations are computed here with
the edge runtime's own classifier and bundle code.
"""

from __future__ import annotations

from typing import Any

from edge_runtime import classifier as cls
from edge_runtime.bundle import HierarchyBundle
from visionloop.deploy.channel import Release
from visionloop.deploy.release import sample_name
from visionloop.hierarchy.types import BundleManifest
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


def hierarchy_section(manifest: BundleManifest) -> dict[str, Any]:
    """The manifest's ``hierarchy`` section (the layout is in ``edge_runtime/bundle.py``)."""
    return {
        "name": manifest.hierarchy,
        "groups": manifest.groups,
        "parent": {
            "file": PARENT_FILE,
            "model": manifest.parent.model,
            "version": manifest.parent.version,
            "task": manifest.parent.task,
            "classes": manifest.parent.classes,
        },
        "children": {
            g: {
                "file": child_file(g),
                "model": c.model,
                "version": c.version,
                "task": c.task,
                "classes": c.classes,
            }
            for g, c in manifest.children.items()
        },
        "child_min_conf": manifest.child_min_conf,
    }


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
