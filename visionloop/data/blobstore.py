"""A content-addressed image store: ``<root>/<sha[:2]>/<sha><ext>``.

The same bytes are stored once, whichever data set version or source they came from.
``LocalBlobStore`` writes through a temporary file and a rename, so a reader never sees
half a blob. A blob is always a copy of the bytes, never a hard link to the source
file: a link shares the inode, so a later in-place edit of the source would change the
stored blob under its hash. The ZenML-backed store (any artifact store, S3 included)
lives in ``materializers/artifact_blob_store.py``.
"""

from __future__ import annotations

import os
import threading
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
    """Blobs in a local folder. ``put`` costs one ``open``, ``write``, ``close`` and
    ``rename`` (plus an ``mkdir`` the first time a two-letter folder is used); it does no
    Python-level temp-name generation, which cost more than the write itself."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = str(self.root)
        self._prefix = self.uri.rstrip(os.sep) + os.sep
        self._dirs: set[str] = set()

    def _path(self, sha256: str, ext: str) -> str:
        return f"{self._prefix}{sha256[:2]}/{sha256}{ext}"

    def has(self, sha256: str, ext: str) -> bool:
        return os.path.isfile(self._path(sha256, ext))

    def put(self, sha256: str, ext: str, data: bytes) -> None:
        path = self._path(sha256, ext)
        if os.path.isfile(path):
            return
        folder = sha256[:2]
        if folder not in self._dirs:
            os.makedirs(self._prefix + folder, exist_ok=True)
            self._dirs.add(folder)
        # unique per process and thread, so concurrent writers of one blob never share a
        # temporary file; the rename is atomic and the last writer wins harmlessly
        tmp = f"{self._prefix}{folder}/.tmp-{sha256}{ext}-{os.getpid()}-{threading.get_ident()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:  # the folder was removed since we made it
            os.makedirs(self._prefix + folder, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view, written = memoryview(data), 0
            while written < len(view):
                written += os.write(fd, view[written:])
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, sha256: str, ext: str) -> bytes:
        with open(self._path(sha256, ext), "rb") as fh:
            return fh.read()

    def local_path(self, sha256: str, ext: str) -> Path | None:
        return Path(self._path(sha256, ext))
