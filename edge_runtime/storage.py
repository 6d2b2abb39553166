"""Object storage for the model channel and the raw image store: a local folder or an
S3 prefix, behind one small interface of string keys (``a/b/c``).

Writes are atomic per object: a local write goes to a temporary file in the same
folder, is flushed to disk and renamed over the target (``os.replace``), so a reader
sees the old object or the new one, never half of one; an S3 ``PutObject`` is atomic by
itself. boto3 is imported only for an ``s3://`` store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol


class StorageError(OSError):
    """The store could not be reached or refused an operation."""


def check_key(key: str) -> str:
    """Refuse keys that could name something outside the store: absolute paths,
    ``..`` segments, backslashes, empty segments."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"refused object key {key!r}: it must be a relative path")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"refused object key {key!r}: '.', '..' and empty segments are not allowed")
    return key


class Store(Protocol):
    uri: str

    def get(self, key: str) -> bytes | None: ...

    def get_to_file(self, key: str, path: Path) -> bool: ...

    def put(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader, and no crash, sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class _Files:
    """File helpers shared by the stores, in terms of their ``get`` and ``put``."""

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get_to_file(self, key: str, path: Path) -> bool:
        """Copy an object to a local file; False when the object does not exist."""
        data = self.get(key)
        if data is None:
            return False
        Path(path).write_bytes(data)
        return True

    def put_file(self, key: str, path: Path) -> None:
        self.put(key, Path(path).read_bytes())


class LocalStore(_Files):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {self.path(key)}: {exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        atomic_write(self.path(key), data)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root)).replace(os.sep, "/")
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


class S3Store(_Files):
    """``s3://bucket/prefix``; ``endpoint_url`` for an S3-API server other than AWS.
    Credentials come from boto3's usual chain (environment, profile, instance role)."""

    def __init__(self, uri: str, endpoint_url: str | None = None, client: Any = None) -> None:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri}")
        bucket, _, prefix = uri[5:].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        if client is None:
            import boto3
            from botocore.config import Config

            endpoint_url = endpoint_url or os.environ.get("VISIONLOOP_S3_ENDPOINT") or None
            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30),
            )
        self.client = client

    def key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StorageError(f"{what} on {self.uri}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{what} on {self.uri}: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        response = self._call(f"get {key}", self.client.get_object, Key=self.key(key))
        if response is None:
            return None
        data: bytes = response["Body"].read()
        return data

    def put(self, key: str, data: bytes) -> None:
        self._call(f"put {key}", self.client.put_object, Key=self.key(key), Body=data)

    def exists(self, key: str) -> bool:
        return self._call(f"head {key}", self.client.head_object, Key=self.key(key)) is not None

    def list(self, prefix: str) -> list[str]:
        full = self.key(prefix) if prefix else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        token: dict[str, Any] = {}
        while True:
            response = self._call(
                f"list {prefix}", self.client.list_objects_v2, Prefix=full.rstrip("/") + "/", **token
            )
            if response is None:
                break
            keys += [obj["Key"][strip:] for obj in response.get("Contents", [])]
            if not response.get("IsTruncated"):
                break
            token = {"ContinuationToken": response["NextContinuationToken"]}
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", self.client.delete_object, Key=self.key(key))


def open_store(uri: str, endpoint_url: str | None = None) -> Store:
    """A store for a folder path (``file://`` allowed) or an ``s3://`` URI."""
    if uri.startswith("s3://"):
        return S3Store(uri, endpoint_url)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return LocalStore(uri)
