"""Materializer of ``QuarantineReport``: JSON, with an HTML table of counts by rule and
every quarantined file with its reason as the dashboard visualization."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from visionloop.data.render import quarantine_html
from visionloop.data.types import QuarantineReport

REPORT_FILE = "quarantine_report.json"


class QuarantineReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (QuarantineReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def save(self, data: QuarantineReport) -> None:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "w") as fh:
            fh.write(data.model_dump_json())

    def load(self, data_type: type[Any]) -> QuarantineReport:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "r") as fh:
            return QuarantineReport.model_validate_json(fh.read())

    def extract_metadata(self, data: QuarantineReport) -> dict[str, MetadataType]:
        return {
            "total": data.total,
            "accepted": data.accepted,
            "quarantined": data.quarantined,
            "quarantined_by_rule": data.counts_by_rule(),
            "ignored_files": len(data.ignored),
        }

    def save_visualizations(self, data: QuarantineReport) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "quarantine_report.html")
        with self.artifact_store.open(path, "w") as fh:
            fh.write(quarantine_html(data))
        return {path: VisualizationType.HTML}
