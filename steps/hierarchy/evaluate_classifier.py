"""Step: a node's held-out evaluation on its test split, and ONNX parity."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from materializers.hierarchy_report_materializers import NodeReportMaterializer
from steps.hierarchy.cache_policy import EVALUATION_CACHE
from visionloop import constants
from visionloop.hierarchy import evaluate
from visionloop.hierarchy.dataset import ClassificationDataset, test_records
from visionloop.hierarchy.metrics import classifier_metrics
from visionloop.hierarchy.types import NodeReport
from visionloop.training import classify
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step(cache_policy=EVALUATION_CACHE, output_materializers=NodeReportMaterializer)
def evaluate_classifier(
    dataset: ClassificationDataset,
    weights: ModelBlob,
    onnx_model: ModelBlob,
    node: str,
    model_name: str,
    settings: dict[str, Any],
    settings_hash: str,
    code_commit: str | None = None,
) -> Annotated[NodeReport, constants.NODE_REPORT]:
    """The test split was seen by neither training nor epoch selection. The headline is
    the ONNX file run by the edge runtime's classifier; ultralytics' own predictions of
    the PyTorch weights are the parity reference (same top class on at least 98% of
    the images, probabilities within 0.01)."""
    records, images = test_records(dataset)
    names = onnx_model.class_names
    onnx_probs = evaluate.onnx_probs(onnx_model.data, names, images)
    with tempfile.TemporaryDirectory(prefix="visionloop-cls-eval-") as tmp:
        pt = Path(tmp) / weights.filename
        pt.write_bytes(weights.data)
        pt_probs = classify.predict_probs(pt, evaluate.bgr_arrays(images), weights.imgsz)
    truth = [r.label for r in records]
    test = classifier_metrics(truth, evaluate.labels_of(onnx_probs, names), names)
    pt_top1 = classifier_metrics(truth, evaluate.labels_of(pt_probs, names), names).top1
    parity = evaluate.parity_figures(pt_probs, onnx_probs)
    report = NodeReport(
        node=node,
        model_name=model_name,
        classes=names,
        dataset_version_id=dataset.version_id,
        leaf_dataset_version_id=dataset.manifest.parent_version,
        test=test,
        pytorch_top1=pt_top1,
        parity=parity,
        parity_ok=evaluate.parity_ok(parity),
        train_seconds=float(weights.metadata.get("train_seconds", 0.0)),
        epochs_run=int(weights.metadata.get("epochs_run", 0)),
        train_images=int(weights.metadata.get("train_images", 0)),
        weights=str(weights.metadata.get("start_weights", "")),
        settings=settings,
        settings_hash=settings_hash,
        code_commit=code_commit,
    )
    logger.info(
        "Node %s: test top-1 %.4f on %d images (PyTorch %.4f; parity %s %s)",
        node,
        test.top1,
        test.images,
        pt_top1,
        "ok" if report.parity_ok else "FAILED",
        parity,
    )
    log_metadata(
        {"test_top1": test.top1, "pytorch_top1": pt_top1, "parity": parity, "parity_ok": report.parity_ok}
    )
    return report
