"""Materializers of the hierarchy pipelines' reports: JSON plus an HTML page for the
dashboard (a node's evaluation and gate; the bundle's gate with per-node, end-to-end
and flat figures side by side; where the bundle ended)."""

from __future__ import annotations

from typing import Any, ClassVar

from zenml.metadata.metadata_types import MetadataType

from materializers.report_materializers import ReportMaterializer
from visionloop.hierarchy.report import (
    bundle_decision_html,
    node_decision_html,
    node_report_html,
    outcome_html,
)
from visionloop.hierarchy.types import BundleDecision, BundleOutcome, NodeDecision, NodeReport


class NodeReportMaterializer(ReportMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (NodeReport,)
    MODEL = NodeReport

    def render(self, data: Any) -> str:
        return node_report_html(data)

    def extract_metadata(self, data: NodeReport) -> dict[str, MetadataType]:
        return {"node": data.node, "test_top1": data.test.top1, "parity_ok": data.parity_ok}


class NodeDecisionMaterializer(ReportMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (NodeDecision,)
    MODEL = NodeDecision

    def render(self, data: Any) -> str:
        return node_decision_html(data)

    def extract_metadata(self, data: NodeDecision) -> dict[str, MetadataType]:
        return {"passed": data.passed, "reasons": "; ".join(data.reasons)}


class BundleDecisionMaterializer(ReportMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (BundleDecision,)
    MODEL = BundleDecision

    def render(self, data: Any) -> str:
        return bundle_decision_html(data)

    def extract_metadata(self, data: BundleDecision) -> dict[str, MetadataType]:
        e = data.candidate.end_to_end
        return {
            "passed": data.passed,
            "reasons": "; ".join(data.reasons),
            "end_to_end_top1": e.top1 if e else -1.0,
            "hierarchical_f": e.hierarchical_f if e else -1.0,
            "pins": data.pins,
        }


class BundleOutcomeMaterializer(ReportMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (BundleOutcome,)
    MODEL = BundleOutcome

    def render(self, data: Any) -> str:
        return outcome_html(data)

    def extract_metadata(self, data: BundleOutcome) -> dict[str, MetadataType]:
        return {"stage": data.stage, "reasons": "; ".join(data.reasons)}
