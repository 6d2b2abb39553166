"""Materializer of the monitoring pipeline's ``DriftDecision`` (JSON and an HTML page)."""

from __future__ import annotations

from typing import Any, ClassVar

from zenml.metadata.metadata_types import MetadataType

from materializers.report_materializers import ReportMaterializer
from visionloop.monitoring.drift import DriftDecision
from visionloop.monitoring.report import decision_html


class DriftDecisionMaterializer(ReportMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (DriftDecision,)
    MODEL = DriftDecision

    def render(self, data: Any) -> str:
        return decision_html(data)

    def extract_metadata(self, data: DriftDecision) -> dict[str, MetadataType]:
        return {
            "drift": data.drift,
            "drifted_features": ", ".join(data.drifted_features),
            "action": data.action,
        }
