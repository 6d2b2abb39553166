"""Steps of the monitoring pipeline: reference statistics, the log window, drift."""

from steps.monitoring.steps import (
    detect_drift,
    load_prediction_window,
    reference_features,
    reference_prediction_features,
)

__all__ = ["detect_drift", "load_prediction_window", "reference_features", "reference_prediction_features"]
