"""Drift of image and prediction statistics, with Evidently.

Each feature is compared between the reference (the production model's data set
version; for prediction features, the model's answers on its held-out splits: a
feature's reference is its non-empty values) and the current window with Evidently's ``ValueDrift`` (the stat test from
configuration; Kolmogorov-Smirnov by default, whose score is a p-value: drift when it is
below the threshold). The window is flagged when at least ``min_drifted_features``
features drift, or when the model's confidence collapses (the share of images with no
detection above the confidence threshold exceeds its limit).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from visionloop.config import MonitorSettings
from visionloop.monitoring.follow_up import FollowUp

P_VALUE_METHODS = {"ks", "chisquare", "z", "fisher_exact", "g_test", "t_test", "mannw", "cramer_von_mises"}


class FeatureDrift(BaseModel):
    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool
    reference_mean: float
    current_mean: float


class DriftDecision(BaseModel):
    """What the monitoring run found and what it set off."""

    reference: str  # the data set version id
    window: dict[str, Any]  # since, until
    current_images: int
    reference_images: int
    enough_data: bool
    drift: bool
    drifted_features: list[str] = Field(default_factory=list)
    confidence_collapse: bool = False
    low_confidence_share: float | None = None
    features: list[FeatureDrift] = Field(default_factory=list)
    log: dict[str, Any] = Field(default_factory=dict)  # lines, empty, malformed, examples
    action: str = "none"  # what was triggered: none, label, retrain
    model: str | None = None  # the production model version monitored, as "name:version"
    follow_up: FollowUp | None = None  # asked of the trigger service (scheduled runs)
    reasons: list[str] = Field(default_factory=list)


def method_of(feature: str, settings: MonitorSettings) -> str:
    """The stat test of a feature: ``prediction_method`` for prediction features (their
    values have many ties: every image with nothing detected scores 0), else ``method``."""
    if feature in settings.prediction_features and settings.prediction_method:
        return settings.prediction_method
    return settings.method


def _report(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str], settings: MonitorSettings
) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=features)
    report = Report(
        [ValueDrift(column=f, method=method_of(f, settings), threshold=settings.threshold) for f in features]
    )
    return report.run(
        reference_data=Dataset.from_pandas(reference[features], data_definition=definition),
        current_data=Dataset.from_pandas(current[features], data_definition=definition),
    )


def compare(
    reference: pd.DataFrame, current: pd.DataFrame, settings: MonitorSettings
) -> tuple[list[FeatureDrift], str]:
    """Per-feature drift and Evidently's HTML report."""
    wanted = [*settings.features, *settings.prediction_features]
    features = [
        f for f in wanted if f in reference.columns and f in current.columns and reference[f].notna().any()
    ]
    snapshot = _report(reference, current, features, settings)
    values = [m["value"] for m in snapshot.dict()["metrics"]]
    out = []
    for name, value in zip(features, values, strict=True):
        method = method_of(name, settings)
        score = float(value) if value is not None and math.isfinite(float(value)) else float("nan")
        lower_is_drift = method in P_VALUE_METHODS
        drifted = (score < settings.threshold) if lower_is_drift else (score >= settings.threshold)
        out.append(
            FeatureDrift(
                feature=name,
                method=method,
                score=score,
                threshold=settings.threshold,
                drifted=bool(drifted),
                reference_mean=float(reference[name].mean()),
                current_mean=float(current[name].mean()),
            )
        )
    return out, snapshot.get_html_str(as_iframe=False)


def decide(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: MonitorSettings,
    reference_id: str,
    window: dict[str, Any],
    log: dict[str, Any],
    predictions: pd.DataFrame | None = None,
) -> tuple[DriftDecision, str]:
    """The decision and Evidently's HTML (empty when there was too little data).
    ``predictions``: the model's prediction features on held-out reference images."""
    reference_images = len(reference)
    if predictions is not None and len(predictions):
        reference = pd.concat(
            [reference.drop(columns=list(predictions.columns), errors="ignore"), predictions]
        )
        reference = reference.reset_index(drop=True)
    decision = DriftDecision(
        reference=reference_id,
        window=window,
        current_images=len(current),
        reference_images=reference_images,
        enough_data=len(current) >= settings.min_images,
        drift=False,
        log=log,
    )
    if not decision.enough_data:
        decision.reasons = [
            f"{len(current)} images in the window, fewer than the {settings.min_images} needed"
        ]
        return decision, ""
    features, html = compare(reference, current, settings)
    decision.features = features
    decision.drifted_features = [f.feature for f in features if f.drifted]
    if "max_score" in current.columns:
        share = float((current["max_score"] < settings.low_confidence).mean())
        decision.low_confidence_share = round(share, 4)
        decision.confidence_collapse = share > settings.max_low_confidence_share
    feature_drift = len(decision.drifted_features) >= settings.min_drifted_features
    decision.drift = feature_drift or decision.confidence_collapse
    if feature_drift:
        decision.reasons.append(
            "drift on "
            + ", ".join(
                f"{f.feature} ({f.reference_mean:.3f} -> {f.current_mean:.3f}, {f.method} {f.score:.2g})"
                for f in features
                if f.drifted
            )
        )
    if decision.confidence_collapse:
        decision.reasons.append(
            f"confidence collapse: {decision.low_confidence_share:.0%} of images have no detection above "
            f"{settings.low_confidence} (limit {settings.max_low_confidence_share:.0%})"
        )
    if not decision.drift:
        decision.reasons.append("no drift")
    return decision, html
