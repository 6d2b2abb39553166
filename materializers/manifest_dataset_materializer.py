"""What the data set materializers share: a data set version is a manifest plus a
content-addressed image store. The manifest (with the version id and where the images
are) goes under the artifact's URI; the images go into the artifact store's shared image
store (``materializers.artifact_blob_store``), once across versions and data set kinds.
Loading checks that the manifest still hashes to the id it was saved with.

Subclasses name their manifest and data set types and add metadata and
visualizations: ``ImageDatasetMaterializer`` (detection), ``ClassificationDatasetMaterializer``
(the hierarchy's classification sets)."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel
from zenml.enums import ArtifactType
from zenml.materializers.base_materializer import BaseMaterializer

from materializers.artifact_blob_store import blob_store_at, default_blob_store
from visionloop.data.blobstore import BlobStore

MANIFEST_FILE = "manifest.json"


class ManifestDataset(Protocol):
    """A data set version as these materializers see it."""

    manifest: Any
    blobs: BlobStore

    @property
    def version_id(self) -> str: ...

    @property
    def short_id(self) -> str: ...

    @property
    def records(self) -> Any: ...

    def read_bytes(self, record: Any) -> bytes: ...


class ManifestDatasetMaterializer(BaseMaterializer):
    """``MANIFEST_TYPE``: the manifest's pydantic model; ``DATASET_TYPE``: the data set
    class, built as ``DATASET_TYPE(manifest, blobs)``."""

    SKIP_REGISTRATION: ClassVar[bool] = True  # a base: its subclasses register their types
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA
    MANIFEST_TYPE: ClassVar[type[BaseModel]]
    DATASET_TYPE: ClassVar[type[Any]]

    def save(self, data: ManifestDataset) -> None:
        target = default_blob_store(self.artifact_store)
        if target.uri != data.blobs.uri:
            for r in data.records:
                if not target.has(r.sha256, r.ext):
                    target.put(r.sha256, r.ext, data.read_bytes(r))
        missing = [r.path for r in data.records if not target.has(r.sha256, r.ext)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) of data set {data.short_id} are not in the image "
                f"store {target.uri}, e.g. {missing[:3]}"
            )
        payload = {
            "version_id": data.version_id,
            "blob_root": target.uri,
            "manifest": data.manifest.model_dump(mode="json"),
        }
        with self.artifact_store.open(os.path.join(self.uri, MANIFEST_FILE), "w") as fh:
            json.dump(payload, fh)

    def load(self, data_type: type[Any]) -> Any:
        with self.artifact_store.open(os.path.join(self.uri, MANIFEST_FILE), "r") as fh:
            payload = json.load(fh)
        manifest = self.MANIFEST_TYPE.model_validate(payload["manifest"])
        dataset = self.DATASET_TYPE(manifest, blob_store_at(payload["blob_root"], self.artifact_store))
        if dataset.version_id != payload["version_id"]:
            raise ValueError(
                f"manifest at {self.uri} hashes to {dataset.version_id}, but was saved as "
                f"{payload['version_id']}: the artifact was modified"
            )
        return dataset

    def compute_content_hash(self, data: ManifestDataset) -> str:
        return data.version_id
