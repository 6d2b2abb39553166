"""Materializer of ``EvaluationReport``: JSON plus the HTML report (metrics, parity,
INT8 decision, tuning, PR curve, confusion matrix, sample predictions) that the
dashboard shows."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from visionloop.training.report import report_html
from visionloop.training.types import EvaluationReport

REPORT_FILE = "evaluation_report.json"


class EvaluationReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (EvaluationReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def save(self, data: EvaluationReport) -> None:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "w") as fh:
            fh.write(data.model_dump_json())

    def load(self, data_type: type[Any]) -> EvaluationReport:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "r") as fh:
            return EvaluationReport.model_validate_json(fh.read())

    def extract_metadata(self, data: EvaluationReport) -> dict[str, MetadataType]:
        return {
            "test_map50": data.test.map50,
            "test_map50_95": data.test.map50_95,
            "onnx_map50": data.onnx.map50,
            "int8_kept": data.int8_kept,
            "parity_ok": data.parity_ok,
            "dataset_version_id": data.dataset_version_id,
        }

    def save_visualizations(self, data: EvaluationReport) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "evaluation_report.html")
        with self.artifact_store.open(path, "w") as fh:
            fh.write(report_html(data))
        return {path: VisualizationType.HTML}
