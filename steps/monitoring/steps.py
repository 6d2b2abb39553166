"""Steps of the monitoring pipeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger
from zenml.types import HTMLString

from edge_runtime.storage import open_store
from materializers.drift_decision_materializer import DriftDecisionMaterializer
from visionloop import constants
from visionloop.config import MonitorSettings
from visionloop.data.dataset import ImageDataset
from visionloop.monitoring.drift import DriftDecision, decide
from visionloop.monitoring.logs import read_window
from visionloop.monitoring.reference import PREDICTION_FEATURES, reference_predictions, reference_table
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step
def reference_features(
    dataset: ImageDataset, max_images: int = 2000
) -> Annotated[pd.DataFrame, "reference_features"]:
    """Per-image statistics of the data set version (cached: once per version)."""
    return reference_table(dataset, max_images)


@step
def reference_prediction_features(
    dataset: ImageDataset,
    model: ModelBlob | None,
    conf: float = 0.25,
    iou: float = 0.7,
    max_images: int = 2000,
) -> Annotated[pd.DataFrame, "reference_predictions"]:
    """The production model's prediction features (best score, box count, mean box
    area) on the data set version's held-out images, predicted by the edge runtime's own
    ONNX code at the serving thresholds (cached: once per data set and model). Without
    a model file, an empty table: prediction features are then not compared."""
    if model is None:
        logger.warning("no production ONNX model: prediction statistics are not compared")
        return pd.DataFrame(columns=list(PREDICTION_FEATURES))
    from edge_runtime.detector import OnnxDetector

    detector = OnnxDetector(model.data, model.class_names, conf=conf, iou=iou)
    return reference_predictions(dataset, detector.predict, max_images)


@step(enable_cache=False)
def load_prediction_window(
    logs: str, since: str | None, until: str | None, s3_endpoint: str | None = None
) -> tuple[Annotated[pd.DataFrame, "current_features"], Annotated[dict[str, Any], "log_summary"]]:
    """The prediction log lines of the window; empty and malformed lines are counted."""
    window = read_window(
        open_store(logs, s3_endpoint),
        "",
        datetime.fromisoformat(since) if since else None,
        datetime.fromisoformat(until) if until else None,
    )
    summary = window.summary()
    if window.malformed or window.empty:
        logger.warning(
            "Prediction logs: %d malformed and %d empty lines skipped (first: %s)",
            window.malformed,
            window.empty,
            window.examples[:3],
        )
    return pd.DataFrame(window.rows), summary


@step(enable_cache=False, output_materializers={constants.DRIFT_DECISION: DriftDecisionMaterializer})
def detect_drift(
    reference: pd.DataFrame,
    predictions: pd.DataFrame,
    current: pd.DataFrame,
    log_summary: dict[str, Any],
    settings: dict[str, Any],
    dataset_version_id: str,
    window: dict[str, Any],
) -> tuple[Annotated[DriftDecision, constants.DRIFT_DECISION], Annotated[HTMLString, constants.DRIFT_REPORT]]:
    """Evidently's comparison of the window with the reference, and the decision."""
    config = MonitorSettings(**settings)
    decision, html = decide(reference, current, config, dataset_version_id, window, log_summary, predictions)
    decision.action = config.on_drift if decision.drift else "none"
    log_metadata(
        metadata={
            "drift": decision.drift,
            "drifted_features": decision.drifted_features,
            "current_images": decision.current_images,
            "malformed_lines": int(log_summary.get("malformed", 0)),
            "action": decision.action,
        }
    )
    logger.info("Monitoring: %s; action %s", "; ".join(decision.reasons), decision.action)
    return decision, HTMLString(html or "<p>Too few images in the window for a comparison.</p>")
