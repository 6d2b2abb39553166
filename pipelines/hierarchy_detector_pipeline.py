"""A detector child of a hierarchy: the detection training steps (train, export to ONNX,
evaluate on the test split, register), the detection gate (mAP50 / mAP50-95 thresholds,
no regression against the node's production version), then the hierarchy's record of
the version as a node."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client

from steps.deployment import gate_model
from steps.hierarchy import register_detector
from steps.training import evaluate_model, export_onnx, register_model, select_params, train_model
from visionloop import constants
from visionloop.training.types import TrainParams


@pipeline(name=constants.HIERARCHY_DETECTOR_PIPELINE, enable_cache=True)
def hierarchy_detector_pipeline(
    dataset_artifact_id: str,
    node: str,
    model_name: str,
    params: dict[str, Any],
    weights: str,
    settings: dict[str, Any],
    settings_hash: str,
    gate: dict[str, Any],
    evaluation: dict[str, Any] | None = None,
    opset: int = 17,
    code_commit: str | None = None,
) -> None:
    """Runs in the context of the node's ZenML model (``Model(<hierarchy>-<group>)``);
    ``dataset_artifact_id`` names the group's detection data set (the
    ``detect_data_<group>`` output of the hierarchy data pipeline); ``params``: the
    ``TrainParams`` (no tuning trials); ``gate``: ``GateSettings``."""
    dataset = Client().get_artifact_version(dataset_artifact_id)
    tuning = select_params([], TrainParams(**params))
    weights_blob = train_model(dataset, tuning, weights=weights)
    onnx_model = export_onnx(weights_blob, opset=opset)
    report = evaluate_model(
        dataset,
        weights_blob,
        onnx_model,
        tuning,
        model_name=model_name,
        code_commit=code_commit,
        **(evaluation or {}),
    )
    registration = register_model(report, dataset, weights_blob, onnx_model)
    decision = gate_model(dataset, gate, after="register_model")
    register_detector(registration, report, decision, node, settings, settings_hash, gate)
