"""Step: pin node versions into a bundle and measure it end to end."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from steps.hierarchy.nodes import fits, node_entry
from visionloop import constants
from visionloop.hierarchy import evaluate
from visionloop.hierarchy.dataset import ClassificationDataset, test_records
from visionloop.hierarchy.spec import FLAT, PARENT, HierarchySpec
from visionloop.hierarchy.types import BundleEvaluation, BundleManifest

logger = get_logger(__name__)

LATENCY_IMAGES = 50


@step(enable_cache=False)
def assemble_bundle(
    leaf: ClassificationDataset, spec: dict[str, Any], pins: dict[str, str], flat_version: str | None = None
) -> tuple[
    Annotated[BundleManifest, constants.BUNDLE_MANIFEST],
    Annotated[BundleEvaluation, constants.BUNDLE_EVALUATION],
]:
    """``pins``: the version of each node (``parent`` and every group) that belong
    together. The bundle is measured on the leaf test split with the edge runtime's own
    routing and fallback (and once more answering with the child always), beside each
    node's own figures and, with ``flat_version``, the flat model's on the same split;
    each detector group on its own images (routing, fallbacks, mAP of the boxes)."""
    h = HierarchySpec.model_validate(spec)
    entries = {
        key: node_entry(
            h.model_name(key),
            pins[key],
            h.groups[key].thresholds if key in h.groups else None,
            h.groups[key].min_conf if key in h.groups else None,
        )
        for key in h.nodes
    }
    manifest = BundleManifest(
        hierarchy=h.name,
        groups=h.declared,
        tasks=h.tasks,
        parent=entries[PARENT][0],
        children={g: entries[g][0] for g in h.groups},
        child_min_conf=h.bundle.child_min_conf,
        leaf_dataset_version_id=leaf.version_id,
    )
    evaluation = BundleEvaluation(
        hierarchy=h.name,
        leaf_dataset_version_id=leaf.version_id,
        child_min_conf=h.bundle.child_min_conf,
        nodes={
            k: {
                "model": n.model,
                "version": n.version,
                "task": n.task,
                **n.figures(),
                "train_seconds": n.train_seconds,
            }
            for k, n in manifest.nodes.items()
        },
    )
    if fits(manifest):
        bundle = evaluate.make_bundle(manifest, {k: blob.data for k, (_, blob) in entries.items()})
        figures = evaluate.evaluate_bundle(bundle, leaf, h.declared)
        evaluation.end_to_end, evaluation.no_fallback = figures.end_to_end, figures.no_fallback
        evaluation.detectors = figures.detectors
        _, images = test_records(leaf)
        evaluation.latency_ms = evaluate.bundle_latency(bundle, images, min(LATENCY_IMAGES, len(images)))
    else:
        evaluation.note = "the pinned versions do not fit together (see the bundle's gate)"
    if flat_version is not None:
        flat, blob = node_entry(h.model_name(FLAT), flat_version)
        evaluation.flat = evaluate.flat_metrics(blob.data, blob.class_names, leaf, h.group_of)
        evaluation.flat_model = f"{flat.model}:{flat.version}"
        evaluation.flat_train_seconds = flat.train_seconds
    e = evaluation.end_to_end
    logger.info(
        "Bundle %s: end-to-end top-1 %s, hF %s (flat %s)%s",
        manifest.pins(),
        f"{e.top1:.4f}" if e else "-",
        f"{e.hierarchical_f:.4f}" if e else "-",
        f"{evaluation.flat.top1:.4f}" if evaluation.flat else "not compared",
        "".join(
            f"; detector {g}: routed {d.routed:.3f}, mAP50 {d.map50:.4f} through the bundle "
            f"({d.child_map50:.4f} alone), fallback {d.fallback_rate:.3f}"
            for g, d in evaluation.detectors.items()
        ),
    )
    log_metadata({"pins": manifest.pins(), "end_to_end_top1": e.top1 if e else -1.0})
    return manifest, evaluation
