"""Step: a node's own gate, against its production version on the same test split."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from materializers.hierarchy_report_materializers import NodeDecisionMaterializer
from steps.deployment import control_plane
from visionloop import constants
from visionloop.deploy.gate import reasons
from visionloop.deploy.types import Check
from visionloop.hierarchy import evaluate
from visionloop.hierarchy.dataset import ClassificationDataset
from visionloop.hierarchy.gate import node_checks
from visionloop.hierarchy.spec import NodeGate
from visionloop.hierarchy.types import NodeDecision, NodeReport
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers=NodeDecisionMaterializer)
def gate_node(
    dataset: ClassificationDataset, report: NodeReport, onnx_model: ModelBlob, gate: dict[str, Any]
) -> Annotated[NodeDecision, constants.NODE_DECISION]:
    """Thresholds (top-1, per-class recall), ONNX parity, and no regression against the
    node's production version, both measured by the edge runtime's classifier on this
    run's test split. With no production version the thresholds alone decide. The
    verdict goes into the model version's metadata, where the bundle's gate reads it."""
    settings = NodeGate(**gate)
    model = get_step_context().model
    production_version = control_plane.version_in_stage(model.name, control_plane.PRODUCTION)
    production, prod_name = None, None
    if production_version is not None:
        prod_name = str(production_version.name)
        prod_blob: ModelBlob = control_plane.load_artifact(production_version, constants.ONNX_MODEL)
        production = evaluate.score_node(prod_blob.data, prod_blob.class_names, dataset)
    checks = node_checks(report.test, production, settings, prod_name)
    checks.append(
        Check(
            name="ONNX parity with PyTorch",
            passed=report.parity_ok,
            value=str(report.parity_ok),
            detail=str(report.parity),
        )
    )
    decision = NodeDecision(
        node=report.node,
        model_name=model.name,
        candidate_version=str(model.version),
        production_version=prod_name,
        dataset_version_id=dataset.version_id,
        candidate=report.test,
        production=production,
        checks=checks,
        passed=all(c.passed for c in checks),
        reasons=reasons(checks, prod_name),
    )
    logger.info(
        "Gate of %s version %s: %s (%s)",
        model.name,
        model.version,
        "passed" if decision.passed else "REJECTED",
        "; ".join(decision.reasons),
    )
    log_metadata(
        metadata={"gate_passed": decision.passed, "gate_reasons": decision.reasons, "gate_settings": gate},
        infer_model=True,
    )
    return decision
