"""Materializer of the labeling round: JSON plus an HTML page with every image's state."""

from __future__ import annotations

from typing import Any, ClassVar

from zenml.metadata.metadata_types import MetadataType

from materializers.report_materializers import ReportMaterializer
from visionloop.labeling.report import round_html
from visionloop.labeling.types import LabelingRound


class LabelingRoundMaterializer(ReportMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (LabelingRound,)
    MODEL = LabelingRound

    def render(self, data: Any) -> str:
        return round_html(data)

    def extract_metadata(self, data: LabelingRound) -> dict[str, MetadataType]:
        return {
            "project_url": data.project_url,
            "created_tasks": data.created_tasks,
            **{f"images_{k}": v for k, v in data.counts().items()},
        }
