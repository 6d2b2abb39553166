"""Materializer of ``ImageDataset``: the manifest under the artifact's URI, the images
content-addressed in the artifact store's shared image store (stored once across
versions; the shared part is ``ManifestDatasetMaterializer``). Visualized as a grid of
sample images with boxes and an HTML summary."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import VisualizationType
from zenml.metadata.metadata_types import MetadataType

from materializers.manifest_dataset_materializer import MANIFEST_FILE, ManifestDatasetMaterializer
from visionloop.data.dataset import DatasetManifest, ImageDataset
from visionloop.data.render import dataset_html, sample_grid

__all__ = ["MANIFEST_FILE", "ImageDatasetMaterializer"]


class ImageDatasetMaterializer(ManifestDatasetMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (ImageDataset,)
    MANIFEST_TYPE = DatasetManifest
    DATASET_TYPE = ImageDataset

    def extract_metadata(self, data: ImageDataset) -> dict[str, MetadataType]:
        stats = data.stats()
        return {
            "version_id": data.version_id,
            "images": stats["images"],
            "labeled": stats["labeled"],
            "unlabeled": stats["unlabeled"],
            "per_split": stats["per_split"],
            "boxes_per_class": stats["boxes_per_class"],
            "boxes_per_image_mean": stats["boxes_per_image_mean"],
            "class_names": data.class_names,
            "source": data.manifest.source,
        }

    def save_visualizations(self, data: ImageDataset) -> dict[str, VisualizationType]:
        grid_path = os.path.join(self.uri, "samples.png")
        with self.artifact_store.open(grid_path, "wb") as fh:
            fh.write(sample_grid(data))
        html_path = os.path.join(self.uri, "summary.html")
        with self.artifact_store.open(html_path, "w") as fh:
            fh.write(dataset_html(data))
        return {grid_path: VisualizationType.IMAGE, html_path: VisualizationType.HTML}
