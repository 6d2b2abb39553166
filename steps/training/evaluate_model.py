"""Step: held-out evaluation on the test split, ONNX parity and the INT8 decision."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import log_metadata, step
from zenml.logger import get_logger

from materializers.evaluation_report_materializer import EvaluationReportMaterializer
from steps.training.cache_policy import EVALUATION_CACHE
from visionloop import constants
from visionloop.data.dataset import ImageDataset
from visionloop.training import evaluate, yolo
from visionloop.training.types import EvaluationReport, ModelBlob, TuningResult
from visionloop.training.workspace import yolo_workspace

logger = get_logger(__name__)


@step(cache_policy=EVALUATION_CACHE, output_materializers=EvaluationReportMaterializer)
def evaluate_model(
    dataset: ImageDataset,
    weights: ModelBlob,
    onnx_model: ModelBlob,
    tuning: TuningResult,
    int8_model: ModelBlob | None = None,
    model_name: str = "model",
    code_commit: str | None = None,
    parity_max_map50_diff: float = 0.02,
    parity_min_match_share: float = 0.9,
    int8_max_map50_drop: float = 0.01,
    device: str = "cpu",
    serving_conf: float = 0.25,
) -> Annotated[EvaluationReport, constants.EVALUATION_REPORT]:
    """The test split was seen by neither tuning nor training. Metrics: ultralytics'
    validator on the PyTorch weights (the headline, with PR curve, confusion matrix and
    sample predictions), and one evaluator over ultralytics' predictions and the edge
    runtime's ONNX and INT8 predictions. Parity holds when the ONNX mAP50 is within
    ``parity_max_map50_diff`` of the PyTorch predictions' and at least
    ``parity_min_match_share`` of their boxes (score >= 0.25) are found again. The INT8
    model is kept when its mAP50 is within ``int8_max_map50_drop`` of the ONNX model's.
    The confusion matrix is the edge runtime's, at the serving threshold ``serving_conf``."""
    records, images = evaluate.test_images(dataset)
    names = dataset.class_names
    with tempfile.TemporaryDirectory(prefix="visionloop-eval-") as tmp:
        pt = Path(tmp) / weights.filename
        pt.write_bytes(weights.data)
        with yolo_workspace(dataset, prefix="visionloop-val-") as (data_yaml, work):
            test, plots = yolo.validate(pt, data_yaml, "test", weights.imgsz, work / "val", device=device)
            test.images = len(records)
        pt_preds = yolo.predict_arrays(pt, evaluate.bgr_arrays(images), weights.imgsz, device=device)
    pt_metrics = evaluate.score(pt_preds, records, names)
    onnx_preds = evaluate.onnx_predictions(onnx_model.data, images)
    onnx_metrics = evaluate.score(onnx_preds, records, names)
    # what a device answers: the edge runtime's predictions at the serving threshold
    plots["confusion_matrix"] = evaluate.confusion_png(onnx_preds, records, names, serving_conf)
    parity = evaluate.parity_figures(pt_preds, onnx_preds, pt_metrics, onnx_metrics)
    parity_ok = (
        abs(parity["map50_diff"]) <= parity_max_map50_diff
        and parity["boxes_matched_share"] >= parity_min_match_share
    )
    int8_metrics, int8_kept, int8_reason = None, False, "INT8 disabled in the configuration"
    if int8_model is not None:
        int8_metrics = evaluate.score(evaluate.onnx_predictions(int8_model.data, images), records, names)
        drop = onnx_metrics.map50 - int8_metrics.map50
        int8_kept = drop <= int8_max_map50_drop
        int8_reason = (
            f"mAP50 {int8_metrics.map50:.4f} against {onnx_metrics.map50:.4f} for fp32: a drop of "
            f"{drop:.4f}, {'within' if int8_kept else 'beyond'} the allowed {int8_max_map50_drop}"
        )
    report = EvaluationReport(
        model_name=model_name,
        dataset_version_id=dataset.version_id,
        test=test,
        pytorch_predict=pt_metrics,
        onnx=onnx_metrics,
        int8=int8_metrics,
        parity=parity,
        parity_ok=parity_ok,
        int8_kept=int8_kept,
        int8_reason=int8_reason,
        tuning=tuning,
        train_params=tuning.best_params,
        train_seconds=float(weights.metadata.get("train_seconds", 0.0)),
        plots=plots,
        code_commit=code_commit,
    )
    logger.info(
        "Test split (%d images): mAP50 %.4f mAP50-95 %.4f; ONNX mAP50 %.4f (parity %s: %s); INT8 %s",
        test.images,
        test.map50,
        test.map50_95,
        onnx_metrics.map50,
        "ok" if parity_ok else "FAILED",
        parity,
        int8_reason,
    )
    log_metadata(
        {
            "test_map50": test.map50,
            "test_map50_95": test.map50_95,
            "onnx_map50": onnx_metrics.map50,
            "parity": parity,
            "parity_ok": parity_ok,
            "int8_kept": int8_kept,
        }
    )
    return report
