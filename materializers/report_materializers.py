"""Materializers of the deployment pipeline's reports: the JSON, plus an HTML page that
the dashboard shows (the gate's decision with candidate and production side by side,
and the staging checks). ``ReportMaterializer`` serves other pydantic reports too."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import BaseModel
from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from visionloop.deploy.report import decision_html, staging_html
from visionloop.deploy.types import PromotionDecision, StagingReport


class ReportMaterializer(BaseMaterializer):
    """A pydantic report as ``report.json`` plus ``report.html``."""

    SKIP_REGISTRATION: ClassVar[bool] = True
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS
    MODEL: ClassVar[type[BaseModel]]

    def render(self, data: Any) -> str:
        raise NotImplementedError

    def save(self, data: BaseModel) -> None:
        with self.artifact_store.open(os.path.join(self.uri, "report.json"), "w") as fh:
            fh.write(data.model_dump_json())

    def load(self, data_type: type[Any]) -> BaseModel:
        with self.artifact_store.open(os.path.join(self.uri, "report.json"), "r") as fh:
            return self.MODEL.model_validate_json(fh.read())

    def save_visualizations(self, data: BaseModel) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "report.html")
        with self.artifact_store.open(path, "w") as fh:
            fh.write(self.render(data))
        return {path: VisualizationType.HTML}


class PromotionDecisionMaterializer(ReportMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (PromotionDecision,)
    MODEL = PromotionDecision

    def render(self, data: Any) -> str:
        return decision_html(data)

    def extract_metadata(self, data: PromotionDecision) -> dict[str, MetadataType]:
        return {
            "passed": data.passed,
            "candidate_version": data.candidate_version,
            "production_version": data.production_version or "none",
            "candidate_map50": data.candidate.map50,
            "production_map50": data.production.map50 if data.production else -1.0,
            "reasons": "; ".join(data.reasons),
        }


class StagingReportMaterializer(ReportMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (StagingReport,)
    MODEL = StagingReport

    def render(self, data: Any) -> str:
        return staging_html(data)

    def extract_metadata(self, data: StagingReport) -> dict[str, MetadataType]:
        return {
            "passed": data.passed,
            "skipped": data.skipped,
            "latency_p95_ms": data.latency_ms.get("p95", -1.0),
        }
