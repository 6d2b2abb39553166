"""Steps of the monitoring pipeline: what is monitored, reference statistics, the log
window, drift."""

from steps.monitoring.steps import (
    MonitorError,
    detect_drift,
    load_prediction_window,
    monitoring_target,
    production_target,
    reference_features,
    reference_prediction_features,
)

__all__ = [
    "MonitorError",
    "detect_drift",
    "load_prediction_window",
    "monitoring_target",
    "production_target",
    "reference_features",
    "reference_prediction_features",
]
