"""Mirroring a ZenML model version in the MLflow model registry (used by the steps that
register a model version: the detection ``register_model``, the hierarchy's
``register_node``). Called inside a step with an active MLflow run and a model context."""

from __future__ import annotations

import mlflow
import mlflow.onnx
import onnx
from zenml import log_metadata

from visionloop.training.types import ModelBlob


def register_onnx(onnx_model: ModelBlob, model_name: str, zenml_version: str) -> str | None:
    """Log the ONNX file as an MLflow model of the active run, registered under the
    ZenML model's name; tag the registered version with the ZenML version and record
    it in the ZenML version's metadata (``mlflow_model_version``). Returns the MLflow
    registered version (None when MLflow registered none)."""
    info = mlflow.onnx.log_model(
        onnx.load_from_string(onnx_model.data),
        name="onnx",
        registered_model_name=model_name,
        pip_requirements=["onnxruntime"],
    )
    registered = str(info.registered_model_version) if info.registered_model_version is not None else None
    if registered is not None:
        mlflow.MlflowClient().set_model_version_tag(
            model_name, registered, "zenml_model_version", zenml_version
        )
        log_metadata(metadata={"mlflow_model_version": registered}, infer_model=True)
    return registered
