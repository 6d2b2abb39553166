"""Launching pipelines with a use-case configuration and reading back what they made.

Kept apart from ``run.py`` so that the command line stays thin and tests launch
pipelines exactly as users do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zenml.models import PipelineRunResponse

from pipelines.data_pipeline import data_pipeline
from visionloop import constants
from visionloop.config import DataSettings
from visionloop.data.dataset import ImageDataset
from visionloop.data.sources import fingerprint, open_source
from visionloop.data.types import QuarantineReport


@dataclass
class DataRunResult:
    run: PipelineRunResponse
    dataset: ImageDataset
    report: QuarantineReport

    @property
    def cached_steps(self) -> list[str]:
        return sorted(n for n, s in self.run.steps.items() if s.status.value == "cached")

    def summary(self) -> dict[str, Any]:
        stats = self.dataset.stats()
        return {
            "pipeline": constants.DATA_PIPELINE,
            "run": self.run.name,
            "status": self.run.status.value,
            "dataset_version_id": self.dataset.version_id,
            "source": self.dataset.manifest.source,
            "label_format": self.dataset.manifest.label_format,
            "images": stats["images"],
            "labeled": stats["labeled"],
            "unlabeled": stats["unlabeled"],
            "per_split": stats["per_split"],
            "boxes_per_class": stats["boxes_per_class"],
            "images_per_class": stats["images_per_class"],
            "qa": {
                "total": self.report.total,
                "accepted": self.report.accepted,
                "quarantined": self.report.quarantined,
                "quarantined_by_rule": self.report.counts_by_rule(),
                "ignored_files": len(self.report.ignored),
            },
            "cached_steps": self.cached_steps,
        }


def output(run: PipelineRunResponse, step: str, name: str) -> Any:
    return run.steps[step].outputs[name][0].load()


def run_data_pipeline(settings: DataSettings, enable_cache: bool = True) -> DataRunResult:
    """Fingerprint the source (so new or changed files invalidate the cache), run the
    data pipeline on the active stack and load its outputs."""
    source = open_source(settings.source, settings.s3_endpoint)
    run = data_pipeline.with_options(enable_cache=enable_cache)(
        source=source.uri,
        source_fingerprint=fingerprint(source),
        label_format=settings.format,
        class_names=settings.class_names,
        group_pattern=settings.group_pattern,
        s3_endpoint=settings.s3_endpoint,
        qa_settings=settings.qa.model_dump(),
        split_settings=settings.split.model_dump(),
    )
    if run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    run = run.get_hydrated_version() if hasattr(run, "get_hydrated_version") else run
    return DataRunResult(
        run=run,
        dataset=output(run, "split_dataset", constants.IMAGE_DATASET),
        report=output(run, "check_images", constants.QUARANTINE_REPORT),
    )
