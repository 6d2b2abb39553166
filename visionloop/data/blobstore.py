"""A content-addressed image store: ``<root>/<sha[:2]>/<sha><ext>``.

The same bytes are stored once, whichever data set version or source they came from.
``LocalBlobStore`` writes through a temporary file and a rename, so a reader never sees
half a blob. The ZenML-backed store (any artifact store, S3 included) lives in
``materializers/artifact_blob_store.py``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol


def blob_key(sha256: str, ext: str) -> str:
    return f"{sha256[:2]}/{sha256}{ext}"


class BlobStore(Protocol):
    uri: str

    def has(self, sha256: str, ext: str) -> bool: ...

    def put(self, sha256: str, ext: str, data: bytes) -> None: ...

    def get(self, sha256: str, ext: str) -> bytes: ...

    def local_path(self, sha256: str, ext: str) -> Path | None: ...


class LocalBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = str(self.root)

    def _path(self, sha256: str, ext: str) -> Path:
        return self.root / blob_key(sha256, ext)

    def has(self, sha256: str, ext: str) -> bool:
        return self._path(sha256, ext).is_file()

    def put(self, sha256: str, ext: str, data: bytes) -> None:
        path = self._path(sha256, ext)
        if path.is_file():
            return
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, sha256: str, ext: str) -> bytes:
        return self._path(sha256, ext).read_bytes()

    def local_path(self, sha256: str, ext: str) -> Path | None:
        return self._path(sha256, ext)
