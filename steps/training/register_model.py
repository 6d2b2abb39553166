"""Step: record the model version (ZenML Model Control Plane and MLflow registry)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import mlflow
from pydantic import BaseModel
from zenml import get_step_context, link_artifact_to_model, log_metadata, step
from zenml.logger import get_logger

from steps.training.mlflow_registry import register_onnx
from visionloop.data.dataset import ImageDataset
from visionloop.training.report import report_html
from visionloop.training.types import EvaluationReport, ModelBlob

logger = get_logger(__name__)


class ModelRegistration(BaseModel):
    model_name: str
    model_version: str
    mlflow_run_id: str | None
    mlflow_model_version: str | None
    dataset_version_id: str
    test_map50: float
    test_map50_95: float


@step(experiment_tracker=True, enable_cache=False)  # the active stack's tracker
def register_model(
    report: EvaluationReport,
    dataset: ImageDataset,
    weights: ModelBlob,
    onnx_model: ModelBlob,
    int8_model: ModelBlob | None = None,
    training_key: str = "",
) -> Annotated[ModelRegistration, "model_registration"]:
    """The ZenML model version of this run gets the metrics, the data set version id,
    the code commit and the sha256 of every model file as metadata, and the data set
    artifact is linked to it (the outputs of the run are linked by ZenML). The MLflow
    run gets the test metrics and the model files, and an MLflow registered model
    version mirrors the ZenML one. Never cached: a re-run whose other steps all come
    from the cache still gets a complete, mirrored model version."""
    context = get_step_context()
    model = context.model
    dataset_input = context.inputs.get("dataset")
    if dataset_input:
        link_artifact_to_model(artifact_version=dataset_input[0], model=model)
    metadata: dict[str, Any] = {
        "training_key": training_key,  # what a re-run with nothing changed finds (launch.py)
        "dataset_version_id": dataset.version_id,
        "code_commit": report.code_commit or "unknown",
        "test_map50": report.test.map50,
        "test_map50_95": report.test.map50_95,
        "test_precision": report.test.precision,
        "test_recall": report.test.recall,
        "onnx_map50": report.onnx.map50,
        "onnx_map50_95": report.onnx.map50_95,
        "parity": report.parity,
        "parity_ok": report.parity_ok,
        "int8_kept": report.int8_kept,
        "int8_map50": report.int8.map50 if report.int8 else -1.0,
        "class_names": onnx_model.class_names,
        "imgsz": onnx_model.imgsz,
        "weights_sha256": weights.sha256,
        "onnx_sha256": onnx_model.sha256,
        "onnx_int8_sha256": int8_model.sha256 if int8_model and report.int8_kept else "",
        "train_params": report.train_params.model_dump(),
    }
    log_metadata(metadata=metadata, infer_model=True)
    mlflow.log_metrics(
        {
            "test_map50": report.test.map50,
            "test_map50_95": report.test.map50_95,
            "test_precision": report.test.precision,
            "test_recall": report.test.recall,
            "onnx_map50": report.onnx.map50,
            **{f"parity_{k}": v for k, v in report.parity.items()},
        }
    )
    mlflow.set_tags(
        {
            "zenml_model": model.name,
            "zenml_model_version": str(model.version),
            "dataset_version_id": dataset.version_id,
            "code_commit": report.code_commit or "unknown",
        }
    )
    with tempfile.TemporaryDirectory(prefix="visionloop-register-") as tmp:
        files = [weights, onnx_model] + ([int8_model] if int8_model is not None and report.int8_kept else [])
        for blob in files:
            (Path(tmp) / blob.filename).write_bytes(blob.data)
            mlflow.log_artifact(str(Path(tmp) / blob.filename), "model")
        (Path(tmp) / "evaluation_report.html").write_text(report_html(report))
        mlflow.log_artifact(str(Path(tmp) / "evaluation_report.html"), "evaluation")
    run = mlflow.active_run()
    run_id = run.info.run_id if run else None
    registered = register_onnx(onnx_model, model.name, str(model.version))
    logger.info(
        "Model %s version %s: test mAP50 %.4f, mAP50-95 %.4f; MLflow run %s, registered version %s",
        model.name,
        model.version,
        report.test.map50,
        report.test.map50_95,
        run_id,
        registered,
    )
    return ModelRegistration(
        model_name=model.name,
        model_version=str(model.version),
        mlflow_run_id=run_id,
        mlflow_model_version=registered,
        dataset_version_id=dataset.version_id,
        test_map50=report.test.map50,
        test_map50_95=report.test.map50_95,
    )
