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

    def names(self, folder: str) -> set[str]:
        """The blobs in one two-letter folder, as file names (``<sha256><ext>``): one
        ``scandir``. Raises ``OSError`` when the folder cannot be read (none: empty)."""
        try:
            return {n for n in os.listdir(self._prefix + folder) if not n.startswith(".")}
        except FileNotFoundError:
            return set()

    def get(self, sha256: str, ext: str) -> bytes:
        with open(self._path(sha256, ext), "rb") as fh:
            return fh.read()

    def local_path(self, sha256: str, ext: str) -> Path | None:
        return Path(self._path(sha256, ext))


class BlobIndex:
    """Which blobs ``store`` holds, for one QA run, which asks about every image it has
    seen before. A ``LocalBlobStore``'s two-letter folders are listed once each, when
    first asked about: one ``scandir`` per folder instead of a ``stat`` per blob (about
    256 listings for 10,000 blobs, a third of the time). At most ``MAX_NAMES`` names are
    held; folders beyond that, and other stores, are asked blob by blob. A blob that is
    removed while the run goes on is seen by the next run (``put`` writes it again)."""

    MAX_NAMES = 1 << 16  # ~8 MiB of names

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self._local = store if isinstance(store, LocalBlobStore) else None
        self._folders: dict[str, set[str] | None] = {}  # None: too many names, stat each
        self._names = 0

    def has(self, sha256: str, ext: str) -> bool:
        if self._local is None:
            return self.store.has(sha256, ext)
        folder = sha256[:2]
        names = self._folders[folder] if folder in self._folders else self._list(folder)
        return self._local.has(sha256, ext) if names is None else f"{sha256}{ext}" in names

    def _list(self, folder: str) -> set[str] | None:
        assert self._local is not None
        names: set[str] | None = None
        if self._names < self.MAX_NAMES:
            try:
                names = self._local.names(folder)
                self._names += len(names)
            except OSError:  # unreadable: ask blob by blob
                names = None
        self._folders[folder] = names
        return names

    def put(self, sha256: str, ext: str, data: bytes) -> None:
        """``store.put``, and remember that the blob is there."""
        self.store.put(sha256, ext, data)
        names = self._folders.get(sha256[:2])
        if names is not None:
            names.add(f"{sha256}{ext}")
