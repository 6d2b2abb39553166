"""Reading node and bundle versions back from the Model Control Plane."""

from __future__ import annotations

from typing import Any

from steps.deployment import control_plane
from visionloop import constants
from visionloop.config import ServingThresholds
from visionloop.hierarchy import evaluate
from visionloop.hierarchy.types import BundleManifest, BundleNode
from visionloop.training.types import ModelBlob


def node_entry(
    model_name: str, version: str, thresholds: ServingThresholds | None = None, min_conf: float | None = None
) -> tuple[BundleNode, ModelBlob]:
    """A node version as a bundle pins it, and its ONNX model. A detector child's
    version (``task: detect`` in its metadata) gets ``thresholds``' box score and IoU;
    ``min_conf``: its group's own child threshold, if any."""
    mv = control_plane.model_version(model_name, version)
    blob: ModelBlob = control_plane.load_artifact(mv, constants.ONNX_MODEL)
    meta: dict[str, Any] = dict(mv.run_metadata)
    detect = meta.get("task") == "detect"
    serving = thresholds or ServingThresholds()
    node = BundleNode(
        model=model_name,
        version=str(mv.name),
        task="detect" if detect else "classify",
        classes=list(blob.class_names),
        onnx_sha256=blob.sha256,
        dataset_version_id=str(meta.get("dataset_version_id", "")),
        gate_passed=bool(meta.get("gate_passed", False)),
        gate_reasons=[str(r) for r in meta.get("gate_reasons") or []],
        test_top1=float(meta.get("test_top1", 0.0) or 0.0),
        test_map50=float(meta["node_map50"]) if detect and "node_map50" in meta else None,
        test_map50_95=float(meta["node_map50_95"]) if detect and "node_map50_95" in meta else None,
        train_seconds=float(meta.get("train_seconds", 0.0)),
        conf=serving.conf if detect else None,
        iou=serving.iou if detect else None,
        min_conf=min_conf,
    )
    return node, blob


def node_models(manifest: BundleManifest) -> dict[str, bytes]:
    """The ONNX bytes of every node a manifest pins (keyed ``parent`` and by group),
    checked against the sha256 the manifest recorded."""
    out = {}
    for key, node in manifest.nodes.items():
        _, blob = node_entry(node.model, node.version)
        if blob.sha256 != node.onnx_sha256:
            raise control_plane.PromotionError(
                f"{node.model} version {node.version}: its ONNX model is not the one the bundle pinned"
            )
        out[key] = blob.data
    return out


def fits(manifest: BundleManifest) -> bool:
    from visionloop.hierarchy.gate import fit_checks

    return all(c.passed for c in fit_checks(manifest))


def production_bundle(bundle_model: str) -> tuple[str, BundleManifest, Any] | None:
    """(version, manifest, edge bundle) of the bundle in production, or None."""
    mv = control_plane.version_in_stage(bundle_model, control_plane.PRODUCTION)
    if mv is None:
        return None
    manifest: BundleManifest = control_plane.load_artifact(mv, constants.BUNDLE_MANIFEST)
    return str(mv.name), manifest, evaluate.make_bundle(manifest, node_models(manifest))
