"""Accepted labels into a new data set version: the base version (the production
model's) plus the newly labelled images.

Images of the base keep their split, so a test image never becomes a training image
from one version to the next. The new images are split among themselves (seeded,
group-aware, stratified, as the data pipeline does). The manifest records its parent
version and the labeling jobs.
"""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, Field

from visionloop.data.dataset import DatasetManifest, manifest_version_id
from visionloop.data.split import SplitConfig, split_assignment
from visionloop.data.types import ImageRecord


class MergeSummary(BaseModel):
    base_version: str
    version: str  # the new data set version's id (the base's when nothing was added)
    added: int  # labelled images that the base did not have labelled
    replaced_unlabeled: int  # of those, images the base held as unlabeled
    already_labeled: int  # labelled in the base: the base's label is kept
    per_split: dict[str, int] = Field(default_factory=dict)
    added_paths: list[str] = Field(default_factory=list)


def merge_labels(
    base: DatasetManifest,
    base_version: str,
    labeled: list[ImageRecord],
    split: SplitConfig,
    source: str,
) -> tuple[DatasetManifest, MergeSummary]:
    """``base`` plus the labelled records of ``labeled`` (unlabeled ones are ignored:
    they are still in the labeling queue)."""
    by_sha = {r.sha256: i for i, r in enumerate(base.records)}
    new = [
        r
        for r in labeled
        if r.labeled and not (r.sha256 in by_sha and base.records[by_sha[r.sha256]].labeled)
    ]
    already = sum(
        1 for r in labeled if r.labeled and r.sha256 in by_sha and base.records[by_sha[r.sha256]].labeled
    )
    assignment = split_assignment(new, split)
    new = [dataclasses.replace(r, split=assignment[r.group]) for r in new]
    records = list(base.records)
    replaced = 0
    for r in new:
        if r.sha256 in by_sha:
            records[by_sha[r.sha256]] = r
            replaced += 1
        else:
            records.append(r)
    per_split: dict[str, int] = {}
    for r in new:
        per_split[str(r.split)] = per_split.get(str(r.split), 0) + 1
    jobs = sorted(set(base.labeling_jobs) | {r.labeling_job for r in new if r.labeling_job})
    manifest = DatasetManifest(
        class_names=base.class_names,
        source=base.source if not new else f"{base.source} + {source}",
        label_format=base.label_format if not new else f"{base.label_format} + label-studio",
        records=records,
        parent_version=base_version,
        labeling_jobs=jobs,
    )
    summary = MergeSummary(
        base_version=base_version,
        version=manifest_version_id(manifest),
        added=len(new),
        replaced_unlabeled=replaced,
        already_labeled=already,
        per_split=per_split,
        added_paths=sorted(r.path for r in new),
    )
    return manifest, summary
