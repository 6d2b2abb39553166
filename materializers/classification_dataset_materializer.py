"""Materializer of ``ClassificationDataset``: the manifest under the artifact's URI, the
images content-addressed in the artifact store's shared image store (the one the
detection data sets use, so an image is stored once). Visualized as a grid of samples
with their labels and an HTML table of counts per class and split."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from materializers.artifact_blob_store import blob_store_at, default_blob_store
from visionloop.hierarchy.dataset import ClassificationDataset, ClassificationManifest
from visionloop.hierarchy.report import dataset_html, sample_grid

MANIFEST_FILE = "manifest.json"


class ClassificationDatasetMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (ClassificationDataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: ClassificationDataset) -> None:
        target = default_blob_store(self.artifact_store)
        if target.uri != data.blobs.uri:
            for r in data.records:
                if not target.has(r.sha256, r.ext):
                    target.put(r.sha256, r.ext, data.read_bytes(r))
        missing = [r.path for r in data.records if not target.has(r.sha256, r.ext)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) of data set {data.short_id} are not in the image store "
                f"{target.uri}, e.g. {missing[:3]}"
            )
        payload = {
            "version_id": data.version_id,
            "blob_root": target.uri,
            "manifest": data.manifest.model_dump(mode="json"),
        }
        with self.artifact_store.open(os.path.join(self.uri, MANIFEST_FILE), "w") as fh:
            json.dump(payload, fh)

    def load(self, data_type: type[Any]) -> ClassificationDataset:
        with self.artifact_store.open(os.path.join(self.uri, MANIFEST_FILE), "r") as fh:
            payload = json.load(fh)
        manifest = ClassificationManifest.model_validate(payload["manifest"])
        dataset = ClassificationDataset(manifest, blob_store_at(payload["blob_root"], self.artifact_store))
        if dataset.version_id != payload["version_id"]:
            raise ValueError(
                f"manifest at {self.uri} hashes to {dataset.version_id}, but was saved as "
                f"{payload['version_id']}: the artifact was modified"
            )
        return dataset

    def compute_content_hash(self, data: ClassificationDataset) -> str:
        return data.version_id

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
