"""Materializer of ``ModelBlob`` (PyTorch weights or an ONNX model): the file itself
under its own name plus ``model.json`` (sha256, class names, input size, opset,
precision). Loading checks the bytes against the recorded sha256."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from visionloop.training.types import ModelBlob

META_FILE = "model.json"


class ModelBlobMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (ModelBlob,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, data: ModelBlob) -> None:
        with self.artifact_store.open(os.path.join(self.uri, data.filename), "wb") as fh:
            fh.write(data.data)
        meta = data.model_dump(mode="json", exclude={"data"})
        meta["sha256"] = data.sha256
        with self.artifact_store.open(os.path.join(self.uri, META_FILE), "w") as fh:
            json.dump(meta, fh)

    def load(self, data_type: type[Any]) -> ModelBlob:
        with self.artifact_store.open(os.path.join(self.uri, META_FILE), "r") as fh:
            meta = json.load(fh)
        sha = meta.pop("sha256")
        with self.artifact_store.open(os.path.join(self.uri, meta["filename"]), "rb") as fh:
            blob = ModelBlob(data=fh.read(), **meta)
        if blob.sha256 != sha:
            raise ValueError(f"{self.uri}/{meta['filename']}: sha256 {blob.sha256} != recorded {sha}")
        return blob

    def compute_content_hash(self, data: ModelBlob) -> str:
        return data.sha256

    def extract_metadata(self, data: ModelBlob) -> dict[str, MetadataType]:
        return {k: v for k, v in data.describe().items() if v is not None}

    def save_visualizations(self, data: ModelBlob) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "model.md")
        rows = "\n".join(f"| {k} | {v} |" for k, v in data.describe().items())
        with self.artifact_store.open(path, "w") as fh:
            fh.write(f"### {data.kind} model `{data.filename}`\n\n| field | value |\n|---|---|\n{rows}\n")
        return {path: VisualizationType.MARKDOWN}
