"""Step: the bundle's gate (the versions fit together, each passed its own gate, and the
end-to-end figures clear the thresholds without regressing against production)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from materializers.hierarchy_report_materializers import BundleDecisionMaterializer
from steps.hierarchy.nodes import production_bundle
from visionloop import constants
from visionloop.hierarchy import evaluate
from visionloop.hierarchy.dataset import ClassificationDataset
from visionloop.hierarchy.gate import bundle_checks, bundle_reasons, fit_checks
from visionloop.hierarchy.spec import HierarchySpec
from visionloop.hierarchy.types import BundleDecision, BundleEvaluation, BundleManifest

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers=BundleDecisionMaterializer)
def gate_bundle(
    manifest: BundleManifest, evaluation: BundleEvaluation, leaf: ClassificationDataset, spec: dict[str, Any]
) -> Annotated[BundleDecision, constants.BUNDLE_DECISION]:
    """The production bundle is measured again, by the same code, on this run's leaf
    test split. A bundle whose versions do not fit together is refused before anything
    else is measured, with the reason in words."""
    h = HierarchySpec.model_validate(spec)
    model = get_step_context().model
    production = production_bundle(model.name)
    prod_name, prod_figures = None, None
    if production is not None:
        prod_name = production[0]
        prod_figures = evaluate.evaluate_bundle(production[2], leaf, h.declared)
    if evaluation.end_to_end is None:
        checks = fit_checks(manifest)
    else:
        checks = bundle_checks(
            manifest,
            evaluation.end_to_end,
            prod_figures.end_to_end if prod_figures else None,
            h.bundle.gate,
            prod_name,
            evaluation.detectors,
            prod_figures.detectors if prod_figures else None,
        )
    decision = BundleDecision(
        bundle_model=model.name,
        candidate_version=str(model.version),
        production_version=prod_name,
        pins=manifest.pins(),
        candidate=evaluation,
        production=prod_figures.end_to_end if prod_figures else None,
        production_detectors=prod_figures.detectors if prod_figures else {},
        checks=checks,
        passed=all(c.passed for c in checks),
        reasons=bundle_reasons(checks, prod_name),
    )
    logger.info(
        "Bundle gate for %s version %s (%s): %s (%s)",
        model.name,
        model.version,
        manifest.pins(),
        "passed" if decision.passed else "REFUSED",
        "; ".join(decision.reasons),
    )
    e = evaluation.end_to_end
    log_metadata(
        metadata={
            "pins": manifest.pins(),
            "gate_passed": decision.passed,
            "gate_reasons": decision.reasons,
            "end_to_end_top1": e.top1 if e else -1.0,
            "hierarchical_f": e.hierarchical_f if e else -1.0,
            "detector_map50": {g: d.map50 for g, d in evaluation.detectors.items()},
            "leaf_dataset_version_id": manifest.leaf_dataset_version_id,
        },
        infer_model=True,
    )
    return decision
