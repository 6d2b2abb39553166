"""The content-addressed image store inside a ZenML artifact store.

Images of every data set version live once under ``<artifact store>/visionloop/images``;
a data set artifact stores only its manifest. Any artifact store works (local, S3, ...)
because all I/O goes through the artifact store's own file API; on a local artifact
store the faster ``LocalBlobStore`` is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from zenml.artifact_stores import BaseArtifactStore
from zenml.client import Client

from visionloop.data.blobstore import BlobStore, LocalBlobStore, blob_key

BLOB_SUBDIR = "visionloop/images"


class ArtifactStoreBlobStore:
    def __init__(self, root: str, artifact_store: BaseArtifactStore) -> None:
        self.uri = root.rstrip("/")
        self.store = artifact_store

    def _path(self, sha256: str, ext: str) -> str:
        return f"{self.uri}/{blob_key(sha256, ext)}"

    def has(self, sha256: str, ext: str) -> bool:
        return bool(self.store.exists(self._path(sha256, ext)))

    def put(self, sha256: str, ext: str, data: bytes) -> None:
        path = self._path(sha256, ext)
        if self.store.exists(path):
            return
        self.store.makedirs(path.rsplit("/", 1)[0])
        with self.store.open(path, "wb") as fh:
            fh.write(data)

    def get(self, sha256: str, ext: str) -> bytes:
        with self.store.open(self._path(sha256, ext), "rb") as fh:
            data: bytes = fh.read()
        return data

    def local_path(self, sha256: str, ext: str) -> Path | None:
        return None


def is_local(uri: str) -> bool:
    return "://" not in uri


def blob_store_at(root: str, artifact_store: BaseArtifactStore | None = None) -> BlobStore:
    if is_local(root):
        return LocalBlobStore(root)
    return ArtifactStoreBlobStore(root, artifact_store or Client().active_stack.artifact_store)


def default_blob_store(artifact_store: BaseArtifactStore | None = None) -> BlobStore:
    """The image store of the active stack's artifact store."""
    store = artifact_store or Client().active_stack.artifact_store
    return blob_store_at(os.path.join(store.path, BLOB_SUBDIR), store)
