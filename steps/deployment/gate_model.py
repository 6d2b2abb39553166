"""Step: the promotion gate, on the current test split."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from materializers.report_materializers import PromotionDecisionMaterializer
from steps.deployment import control_plane
from visionloop import constants
from visionloop.config import GateSettings
from visionloop.data.dataset import ImageDataset
from visionloop.deploy.channel import now_iso
from visionloop.deploy.gate import gate_checks, reasons
from visionloop.deploy.types import Check, PromotionDecision
from visionloop.training import evaluate
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers=PromotionDecisionMaterializer)
def gate_model(
    dataset: ImageDataset, gate: dict[str, Any]
) -> Annotated[PromotionDecision, constants.PROMOTION_DECISION]:
    """Measure the candidate (this run's model version) and the current production
    version with the same code (the edge runtime's ONNX predictions, scored by the
    training evaluator) on the same current test split, then apply the thresholds and
    the no-regression rule. With no production version, the thresholds alone decide."""
    settings = GateSettings(**gate)
    model = get_step_context().model
    candidate_blob: ModelBlob = control_plane.load_artifact(model, constants.ONNX_MODEL)
    records, images = evaluate.test_images(dataset)
    names = dataset.class_names
    candidate = evaluate.score(evaluate.onnx_predictions(candidate_blob.data, images), records, names)
    production_version = control_plane.version_in_stage(model.name, control_plane.PRODUCTION)
    production = None
    extra: list[Check] = []
    if production_version is not None:
        production_blob: ModelBlob = control_plane.load_artifact(production_version, constants.ONNX_MODEL)
        if production_blob.class_names != candidate_blob.class_names:
            extra.append(
                Check(
                    name="same classes as production",
                    passed=True,
                    value=", ".join(candidate_blob.class_names),
                    limit=", ".join(production_blob.class_names),
                    detail="classes changed: compared on the current classes",
                )
            )
        production = evaluate.score(evaluate.onnx_predictions(production_blob.data, images), records, names)
    prod_name = str(production_version.name) if production_version is not None else None
    checks = gate_checks(candidate, production, settings, prod_name) + extra
    decision = PromotionDecision(
        model_name=model.name,
        candidate_version=str(model.version),
        production_version=prod_name,
        dataset_version_id=dataset.version_id,
        test_images=len(records),
        candidate=candidate,
        production=production,
        checks=checks,
        passed=all(c.passed for c in checks),
        reasons=reasons(checks, prod_name),
        decided_at=now_iso(),
    )
    logger.info(
        "Gate for %s version %s: %s (%s)",
        model.name,
        model.version,
        "passed" if decision.passed else "REJECTED",
        "; ".join(decision.reasons),
    )
    log_metadata(
        metadata={
            "gate_passed": decision.passed,
            "gate_reasons": decision.reasons,
            "gate_map50": candidate.map50,
        },
        infer_model=True,
    )
    return decision
