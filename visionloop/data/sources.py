"""Where raw images and label files are read from: a local folder or an S3 prefix.

Both sources speak in POSIX paths relative to their root. ``within_root`` is the one
place that decides whether a relative path stays inside the root; a path from a label
file that escapes it is never read.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file seen in a listing: relative path, size in bytes, and a change stamp
    (size, mtime in ns and inode for a folder; the ETag for S3) used to fingerprint the
    source and to recognise a file that QA has already seen. ``plain`` is set by a
    ``LocalSource`` for a file that is not a symlink (its folders never are)."""

    path: str
    size: int
    stamp: str
    plain: bool = False  # neither it nor a folder above it is a symlink: it cannot leave the root


class DataSource(Protocol):
    uri: str

    def list_files(self) -> Iterator[SourceFile]: ...

    def read_bytes(self, path: str) -> bytes: ...

    def exists(self, path: str) -> bool: ...

    def uri_for(self, path: str) -> str: ...

    def local_path(self, path: str) -> Path | None: ...

    def contains(self, path: str) -> bool: ...


def within_root(path: str) -> bool:
    """True when ``path`` (relative, POSIX) does not leave its root.

    >>> within_root("bad/a.jpg"), within_root("../etc/passwd"), within_root("/abs.jpg")
    (True, False, False)
    """
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        return False
    if ".." not in path:
        return True
    normalized = posixpath.normpath(path)
    return normalized != ".." and not normalized.startswith("../")


def _is_normal(path: str) -> bool:
    """True when ``posixpath.normpath`` would return ``path`` unchanged (a quick test
    that may say False for some normal paths, such as ``a./b``)."""
    return not (".." in path or "//" in path or "./" in path or path.endswith(("/", "/.")) or path == ".")


class SourceError(RuntimeError):
    """A source cannot be listed or read; the message names it and what to check."""


class LocalSource:
    """A folder on disk. Symlinks are followed only when their target stays inside."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise SourceError(f"data source {root} is not a folder (resolved: {self.root})")
        self.uri = str(self.root)
        self._prefix = self.uri.rstrip("/") + "/"
        self._last: tuple[str, str | None] = ("", None)
        self._plain: set[str] = set()

    def list_files(self) -> Iterator[SourceFile]:
        """Files under the root in sorted order (a folder's files, then its subfolders),
        hidden ones skipped; symlinked folders are not descended into, and a folder that
        cannot be read is skipped, as ``os.walk`` does. A file that is not a symlink is
        listed as ``plain`` (``scandir`` tells at no cost): QA need not resolve its path."""
        return self._list(self.uri, "")

    def _list(self, folder: str, rel_dir: str) -> Iterator[SourceFile]:
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=attrgetter("name"))
        except OSError:
            return
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():
                    subfolders.append(entry)
                continue
            link = entry.is_symlink()
            try:
                st = entry.stat()
            except OSError:  # a dangling symlink: still listed, QA reports it
                st = entry.stat(follow_symlinks=False)
            stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
            yield SourceFile(rel_dir + entry.name, st.st_size, stamp, not link)
        for entry in subfolders:
            yield from self._list(entry.path, f"{rel_dir}{entry.name}/")

    def local_path(self, path: str) -> Path | None:
        """The real path of ``path``, or None when it (or a symlink in it) escapes.

        Components are checked with one ``lstat`` each; only a path that goes through a
        symlink is resolved in full. Folders found to be plain (no symlink up to the root)
        are remembered for the life of this source, so a file in a known folder costs one
        ``lstat``. The last answer is remembered too (QA asks twice)."""
        real = self._real(path)
        return None if real is None else Path(real)

    def _real(self, path: str) -> str | None:
        if self._last[0] == path:
            return self._last[1]
        result = self._local_path(path)
        self._last = (path, result)
        return result

    def _local_path(self, path: str) -> str | None:
        if not within_root(path):
            return None
        normalized = path if _is_normal(path) else posixpath.normpath(path)
        folder = posixpath.dirname(normalized)
        full = os.path.join(self.uri, normalized)
        if (folder and not self._plain_folder(folder)) or os.path.islink(full):
            real = Path(full).resolve()
            if real != self.root and self.root not in real.parents:
                return None
            return str(real)
        return full

    def _plain_folder(self, folder: str) -> bool:
        """True when no component of ``folder`` (relative, normalised) is a symlink."""
        if folder in self._plain:
            return True
        parent = posixpath.dirname(folder)
        if parent and not self._plain_folder(parent):
            return False
        if os.path.islink(os.path.join(self.uri, folder)):
            return False
        self._plain.add(folder)
        return True

    def contains(self, path: str) -> bool:
        return self._real(path) is not None

    def _checked(self, path: str) -> Path:
        real = self.local_path(path)
        if real is None:
            raise SourceError(f"{path!r} escapes the data root {self.root}")
        return real

    def read_bytes(self, path: str) -> bytes:
        return self._checked(path).read_bytes()

    def exists(self, path: str) -> bool:
        real = self.local_path(path)
        return real is not None and real.is_file()

    def uri_for(self, path: str) -> str:
        """``os.path.join(self.uri, path)``, without its overhead (ingestion calls it for
        every image)."""
        return path if path.startswith("/") else self._prefix + path


class S3Source:
    """An ``s3://bucket/prefix`` read with boto3.

    ``endpoint_url`` (or ``$VISIONLOOP_S3_ENDPOINT``, then ``$AWS_ENDPOINT_URL``) points
    at any S3 API server, such as moto's server on loopback in the tests.
    """

    def __init__(self, uri: str, endpoint_url: str | None = None, client: Any = None) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise SourceError(f"{uri!r} is not an s3://bucket/prefix URI")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = client or make_s3_client(endpoint_url)

    def _key(self, path: str) -> str:
        if not within_root(path):
            raise SourceError(f"{path!r} escapes the data root {self.uri}")
        path = posixpath.normpath(path)
        return f"{self.prefix}/{path}" if self.prefix else path

    def list_files(self) -> Iterator[SourceFile]:
        paginator = self.client.get_paginator("list_objects_v2")
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(start) :]
                    if not rel or rel.endswith("/") or posixpath.basename(rel).startswith("."):
                        continue
                    yield SourceFile(rel, int(obj["Size"]), str(obj.get("ETag", "")))
        except Exception as exc:  # botocore raises many types; name the source
            raise SourceError(f"cannot list {self.uri}: {exc}") from exc

    def read_bytes(self, path: str) -> bytes:
        """The object's bytes; any S3 failure is raised as ``OSError`` naming the URI,
        so QA quarantines the image as ``unreadable`` instead of crashing."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(path))
            data: bytes = response["Body"].read()
        except SourceError:
            raise
        except Exception as exc:  # botocore's ClientError, connection errors, ...
            raise OSError(f"cannot read {self.uri_for(path)}: {exc}") from exc
        return data

    def exists(self, path: str) -> bool:
        if not within_root(path):
            return False
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(path))
        except Exception:
            return False
        return True

    def uri_for(self, path: str) -> str:
        return f"s3://{self.bucket}/{self._key(path)}"

    def local_path(self, path: str) -> Path | None:
        return None

    def contains(self, path: str) -> bool:
        return within_root(path)


def make_s3_client(endpoint_url: str | None = None) -> Any:
    import boto3

    endpoint = endpoint_url or os.environ.get("VISIONLOOP_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None)


def open_source(uri: str, s3_endpoint: str | None = None) -> LocalSource | S3Source:
    """A source for a folder path or an ``s3://`` URI."""
    if uri.startswith("s3://"):
        return S3Source(uri, endpoint_url=s3_endpoint)
    return LocalSource(uri)


def fingerprint(source: DataSource) -> str:
    """A hash of the listing (paths, sizes, change stamps): it changes when any file is
    added, removed or modified, and is what makes ingestion re-run instead of hitting
    the step cache."""
    digest = hashlib.sha256(source.uri.encode())
    for item in source.list_files():
        digest.update(f"\n{item.path}\t{item.size}\t{item.stamp}".encode())
    return digest.hexdigest()
