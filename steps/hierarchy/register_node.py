"""Step: record a node's model version (ZenML Model Control Plane and MLflow registry)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import get_step_context, link_artifact_to_model, log_metadata, step
from zenml.logger import get_logger

from steps.training.mlflow_registry import register_onnx
from visionloop import constants
from visionloop.hierarchy.dataset import ClassificationDataset
from visionloop.hierarchy.report import node_report_html
from visionloop.hierarchy.types import NodeDecision, NodeRegistration, NodeReport
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step(experiment_tracker=constants.EXPERIMENT_TRACKER, enable_cache=False)
def register_node(
    report: NodeReport,
    decision: NodeDecision,
    dataset: ClassificationDataset,
    weights: ModelBlob,
    onnx_model: ModelBlob,
) -> Annotated[NodeRegistration, "node_registration"]:
    """The node's ZenML model version gets its classes, data set version, settings hash
    (what the hierarchy command compares to skip an unchanged node), test figures, gate
    verdict and file hashes; the data set artifact is linked to it. MLflow gets the
    metrics, the files and a registered model version that mirrors the ZenML one."""
    context = get_step_context()
    model = context.model
    dataset_input = context.inputs.get("dataset")
    if dataset_input:
        link_artifact_to_model(artifact_version=dataset_input[0], model=model)
    log_metadata(
        metadata={
            "task": "classify",
            "node": report.node,
            "class_names": onnx_model.class_names,
            "imgsz": onnx_model.imgsz,
            "dataset_version_id": dataset.version_id,
            "leaf_dataset_version_id": dataset.manifest.parent_version or "",
            "settings_hash": report.settings_hash,
            "train_settings": report.settings,
            "test_top1": report.test.top1,
            "parity_ok": report.parity_ok,
            "train_seconds": report.train_seconds,
            "gate_passed": decision.passed,
            "gate_reasons": decision.reasons,
            "code_commit": report.code_commit or "unknown",
            "weights_sha256": weights.sha256,
            "onnx_sha256": onnx_model.sha256,
        },
        infer_model=True,
    )
    mlflow.log_metrics({"test_top1": report.test.top1, "pytorch_top1": report.pytorch_top1})
    mlflow.set_tags(
        {"zenml_model": model.name, "zenml_model_version": str(model.version), "node": report.node}
    )
    with tempfile.TemporaryDirectory(prefix="visionloop-register-") as tmp:
        for blob in (weights, onnx_model):
            (Path(tmp) / blob.filename).write_bytes(blob.data)
            mlflow.log_artifact(str(Path(tmp) / blob.filename), "model")
        (Path(tmp) / "node_report.html").write_text(node_report_html(report))
        mlflow.log_artifact(str(Path(tmp) / "node_report.html"), "evaluation")
    run = mlflow.active_run()
    registered = register_onnx(onnx_model, model.name, str(model.version))
    logger.info(
        "Node %s: model %s version %s, test top-1 %.4f",
        report.node,
        model.name,
        model.version,
        report.test.top1,
    )
    return NodeRegistration(
        node=report.node,
        model_name=model.name,
        model_version=str(model.version),
        mlflow_run_id=run.info.run_id if run else None,
        mlflow_model_version=registered,
        dataset_version_id=dataset.version_id,
        test_top1=report.test.top1,
        gate_passed=decision.passed,
    )
