"""One node of a hierarchy: train its classifier, export it to ONNX, evaluate it on its
test split, apply its own gate and register a version of its own ZenML model."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client

from steps.hierarchy import evaluate_classifier, gate_node, register_node, train_classifier
from steps.training import export_onnx
from visionloop import constants


@pipeline(name=constants.HIERARCHY_NODE_PIPELINE, enable_cache=True)
def hierarchy_node_pipeline(
    dataset_artifact_id: str,
    node: str,
    model_name: str,
    settings: dict[str, Any],
    settings_hash: str,
    gate: dict[str, Any],
    opset: int = 17,
    code_commit: str | None = None,
) -> None:
    """Runs in the context of the node's ZenML model (``Model(<hierarchy>-<node>)`` in
    the pipeline options); ``dataset_artifact_id`` names the node's data set artifact
    (a ``node_data_<node>`` output of the hierarchy data pipeline)."""
    dataset = Client().get_artifact_version(dataset_artifact_id)
    weights = train_classifier(dataset, settings)
    onnx_model = export_onnx(weights, opset=opset)
    report = evaluate_classifier(
        dataset,
        weights,
        onnx_model,
        node=node,
        model_name=model_name,
        settings=settings,
        settings_hash=settings_hash,
        code_commit=code_commit,
    )
    decision = gate_node(dataset, report, onnx_model, gate=gate)
    register_node(report, decision, dataset, weights, onnx_model)
