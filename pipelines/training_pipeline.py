"""The training pipeline: tune on a subset, train, evaluate on the test split, export
to ONNX (and INT8), and register a model version."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client

from steps.training import (
    evaluate_model,
    export_onnx,
    quantize_onnx,
    register_model,
    select_params,
    train_model,
    tune_trial,
)
from visionloop import constants
from visionloop.training.types import TrainParams


@pipeline(name=constants.TRAINING_PIPELINE, enable_cache=True)
def training_pipeline(
    dataset_artifact_id: str,
    trials: list[dict[str, Any]],
    base_params: dict[str, Any],
    weights: str = "abd",
    tune_subset: float = 0.5,
    opset: int = 17,
    int8: bool = True,
    calibration_images: int = 48,
    evaluation: dict[str, Any] | None = None,
    model_name: str = "model",
    code_commit: str | None = None,
    written: list[str] | None = None,
    training_key: str = "",
) -> None:
    """``dataset_artifact_id`` names an image data set artifact version (the output of
    the data pipeline);
    ``trials`` the parameters of each tuning trial (one step each, in parallel where the
    orchestrator allows); ``base_params`` the configured training parameters, of which
    ``written`` names those the user wrote (a tuned replacement is logged)."""
    dataset = Client().get_artifact_version(dataset_artifact_id)
    results = [
        tune_trial(
            dataset, TrainParams(**p), index=i, subset=tune_subset, weights=weights, id=f"tune_trial_{i}"
        )
        for i, p in enumerate(trials)
    ]
    tuning = select_params(results, TrainParams(**base_params), written=written)
    weights_blob = train_model(dataset, tuning, weights=weights)
    onnx_model = export_onnx(weights_blob, opset=opset)
    int8_model = quantize_onnx(onnx_model, dataset, calibration_images=calibration_images) if int8 else None
    report = evaluate_model(
        dataset,
        weights_blob,
        onnx_model,
        tuning,
        int8_model=int8_model,
        model_name=model_name,
        code_commit=code_commit,
        **(evaluation or {}),
    )
    register_model(
        report, dataset, weights_blob, onnx_model, int8_model=int8_model, training_key=training_key
    )
