"""The promotion gate: absolute thresholds, and no regression against production on
the same test split."""

from __future__ import annotations

from visionloop.config import GateSettings
from visionloop.deploy.types import Check
from visionloop.training.types import Metrics


def gate_checks(
    candidate: Metrics, production: Metrics | None, settings: GateSettings, production_version: str | None
) -> list[Check]:
    """The checks of the gate, all evaluated (a report names every failure, not the first)."""
    checks = [
        Check(
            name="mAP50 threshold",
            passed=candidate.map50 >= settings.min_map50,
            value=round(candidate.map50, 4),
            limit=settings.min_map50,
        ),
        Check(
            name="mAP50-95 threshold",
            passed=candidate.map50_95 >= settings.min_map50_95,
            value=round(candidate.map50_95, 4),
            limit=settings.min_map50_95,
        ),
    ]
    for name, values in sorted(candidate.per_class.items()):
        recall = float(values.get("recall", 0.0))
        checks.append(
            Check(
                name=f"recall of class {name}",
                passed=recall >= settings.min_class_recall,
                value=round(recall, 4),
                limit=settings.min_class_recall,
            )
        )
    if production is None:
        return checks
    for metric in ("map50", "map50_95"):
        cand, prod = getattr(candidate, metric), getattr(production, metric)
        floor = prod - settings.max_regression
        label = "mAP50" if metric == "map50" else "mAP50-95"
        checks.append(
            Check(
                name=f"{label} against production",
                passed=cand >= floor - 1e-9,
                value=round(cand, 4),
                limit=round(floor, 4),
                detail=f"production version {production_version}: {prod:.4f}, "
                f"allowed regression {settings.max_regression}",
            )
        )
    return checks


def reasons(checks: list[Check], production_version: str | None) -> list[str]:
    failed = [c for c in checks if not c.passed]
    if failed:
        return [
            f"{c.name}: {c.value} is below {c.limit}" + (f" ({c.detail})" if c.detail else "") for c in failed
        ]
    if production_version is None:
        return ["no production version yet: passed on the absolute thresholds alone"]
    return [f"clears every threshold and is no worse than production version {production_version}"]
