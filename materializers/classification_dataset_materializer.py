"""Materializer of ``ClassificationDataset``: the manifest under the artifact's URI, the
images content-addressed in the artifact store's shared image store (the one the
detection data sets use, so an image is stored once; the shared part is
``ManifestDatasetMaterializer``). Visualized as a grid of samples with their labels and
an HTML table of counts per class and split."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import VisualizationType
from zenml.metadata.metadata_types import MetadataType

from materializers.manifest_dataset_materializer import ManifestDatasetMaterializer
from visionloop.hierarchy.dataset import ClassificationDataset, ClassificationManifest
from visionloop.hierarchy.report import dataset_html, sample_grid


class ClassificationDatasetMaterializer(ManifestDatasetMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (ClassificationDataset,)
    MANIFEST_TYPE = ClassificationManifest
    DATASET_TYPE = ClassificationDataset

    def extract_metadata(self, data: ClassificationDataset) -> dict[str, MetadataType]:
        stats = data.stats()
        return {
            "version_id": data.version_id,
            "name": data.manifest.name,
            "images": stats["images"],
            "per_split": stats["per_split"],
            "class_names": data.class_names,
            "leaf_version_id": data.manifest.parent_version or "",
        }

    def save_visualizations(self, data: ClassificationDataset) -> dict[str, VisualizationType]:
        grid = os.path.join(self.uri, "samples.png")
        with self.artifact_store.open(grid, "wb") as fh:
            fh.write(sample_grid(data))
        page = os.path.join(self.uri, "summary.html")
        with self.artifact_store.open(page, "w") as fh:
            fh.write(dataset_html(data))
        return {grid: VisualizationType.IMAGE, page: VisualizationType.HTML}
