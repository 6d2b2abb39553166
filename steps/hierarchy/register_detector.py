"""Step: what makes a detection model version a node of a hierarchy (after the detection
steps trained, evaluated, registered and gated it)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from steps.training.register_model import ModelRegistration
from visionloop.deploy.types import PromotionDecision
from visionloop.hierarchy.types import NodeRegistration
from visionloop.training.types import EvaluationReport

logger = get_logger(__name__)


@step(enable_cache=False)
def register_detector(
    registration: ModelRegistration,
    report: EvaluationReport,
    decision: PromotionDecision,
    node: str,
    settings: dict[str, Any],
    settings_hash: str,
    gate: dict[str, Any],
) -> Annotated[NodeRegistration, "node_registration"]:
    """The detection register step recorded the figures, files and data set of the
    version; the detection gate its verdict. This adds what the hierarchy reads back:
    the task and node, the settings hash and gate settings (the same hash, data set and
    gate: the version is reused instead of trained again), and the figures measured on
    the ONNX file through the edge runtime's detector."""
    onnx = decision.candidate  # the gate measured the ONNX file on the test split
    log_metadata(
        metadata={
            "task": "detect",
            "node": node,
            "settings_hash": settings_hash,
            "train_settings": settings,
            "gate_settings": gate,
            "train_seconds": report.train_seconds,
            "node_map50": onnx.map50,
            "node_map50_95": onnx.map50_95,
        },
        infer_model=True,
    )
    logger.info(
        "Detector node %s: model %s version %s, test mAP50 %.4f mAP50-95 %.4f (ONNX), gate %s",
        node,
        registration.model_name,
        registration.model_version,
        onnx.map50,
        onnx.map50_95,
        "passed" if decision.passed else "REJECTED",
    )
    return NodeRegistration(
        node=node,
        model_name=registration.model_name,
        model_version=registration.model_version,
        mlflow_run_id=registration.mlflow_run_id,
        mlflow_model_version=registration.mlflow_model_version,
        dataset_version_id=registration.dataset_version_id,
        task="detect",
        test_map50=onnx.map50,
        test_map50_95=onnx.map50_95,
        gate_passed=decision.passed,
    )
