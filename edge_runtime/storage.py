"""Object storage for the model channel and the raw image store: a local folder or an
S3 prefix, behind one small interface of string keys (``a/b/c``).

Reads are bounded: ``get(key, max_bytes)`` refuses an object above ``max_bytes`` (from
its size, before reading it), and ``get_to_file`` streams into a file, hashing as it
goes, aborting past ``max_bytes`` or past an overall ``deadline`` (``time.monotonic()``
seconds), so neither memory nor the local disk is at the mercy of what the store holds.
A folder store refuses symlinks anywhere below its root and anything but regular files
(a FIFO, a device) with ``ObjectRefused``.

Conditional writes (``put_if``): S3's ``If-None-Match: *`` / ``If-Match: <etag>``, and an
``flock``-ed compare-and-replace on a folder, so that two publishers racing for one
pointer cannot both win (the loser re-reads and tries again).

Writes are atomic per object: a local write goes to a temporary file in the same
folder, is flushed to disk and renamed over the target (``os.replace``), so a reader
sees the old object or the new one, never half of one; an S3 ``PutObject`` is atomic by
itself. boto3 is imported only for an ``s3://`` store.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

CHUNK = 1 << 20
LOCAL_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class StorageError(OSError):
    """The store could not be reached or refused an operation."""


class ObjectRefused(ValueError):
    """The store answered, but with something a bounded reader refuses: an object over
    its size cap, a download past its deadline, a symlink or special file in a folder."""


def copy_bounded(
    read: Callable[[int], bytes],
    out: IO[bytes],
    what: str,
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> str:
    """Copy ``read``'s chunks to ``out`` until it returns b''; the sha256 of what was
    copied. Raises ObjectRefused past ``max_bytes`` or past ``deadline`` (monotonic s)."""
    digest = hashlib.sha256()
    total = 0
    while True:
        if deadline is not None and time.monotonic() > deadline:
            raise ObjectRefused(
                f"{what}: download not finished by its deadline after {total} bytes (slow retrieval?); aborted"
            )
        chunk = read(CHUNK)
        if not chunk:
            return digest.hexdigest()
        total += len(chunk)
        if max_bytes is not None and total > max_bytes:
            raise ObjectRefused(
                f"{what}: more than the {max_bytes} bytes allowed (endless data?); download aborted"
            )
        digest.update(chunk)
        out.write(chunk)


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

    def get(self, key: str, max_bytes: int | None = None) -> bytes | None: ...

    def get_to_file(
        self, key: str, path: Path, max_bytes: int | None = None, deadline: float | None = None
    ) -> str | None: ...

    def get_tagged(self, key: str, max_bytes: int | None = None) -> tuple[bytes | None, str | None]: ...

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool: ...

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

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def put_file(self, key: str, path: Path) -> None:
        self.put(key, Path(path).read_bytes())


class LocalStore(_Files):
    """A folder. Reads walk the key one segment at a time with ``O_NOFOLLOW`` (a symlink
    anywhere below the root is refused) and accept regular files only."""

    conditional = True

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[tuple[IO[bytes], int] | None]:
        """(the open regular file, its size), or None when there is no such object."""
        parts = check_key(key).split("/")
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            yield None
            return
        except OSError as exc:
            raise StorageError(f"cannot open the channel folder {self.root}: {exc}") from exc
        try:
            for part in parts[:-1]:
                try:
                    nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
                except FileNotFoundError:
                    yield None
                    return
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise ObjectRefused(
                            f"{self.path(key)}: {part!r} is a symlink or not a folder"
                        ) from exc
                    raise StorageError(f"cannot read {self.path(key)}: {exc}") from exc
                os.close(fd)
                fd = nxt
            try:
                # O_NONBLOCK: opening a FIFO must not hang; fstat below refuses it
                ffd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
            except FileNotFoundError:
                yield None
                return
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ObjectRefused(
                        f"{self.path(key)}: is a symlink; a channel holds plain files"
                    ) from exc
                raise StorageError(f"cannot read {self.path(key)}: {exc}") from exc
        finally:
            os.close(fd)
        try:
            info = os.fstat(ffd)
            if not stat.S_ISREG(info.st_mode):
                raise ObjectRefused(f"{self.path(key)}: not a regular file (a FIFO, device or folder)")
            os.set_blocking(ffd, True)
            f = os.fdopen(ffd, "rb")
        except BaseException:
            os.close(ffd)
            raise
        with f:
            yield f, info.st_size

    def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        try:
            with self._open(key) as opened:
                if opened is None:
                    return None
                f, size = opened
                if max_bytes is not None and size > max_bytes:
                    raise ObjectRefused(
                        f"{self.path(key)}: {size} bytes, over the {max_bytes} allowed; not read"
                    )
                data = f.read(max_bytes + 1 if max_bytes is not None else -1)
        except OSError as exc:
            raise StorageError(f"cannot read {self.path(key)}: {exc}") from exc
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectRefused(f"{self.path(key)}: grew past the {max_bytes} bytes allowed while read")
        return data

    def get_to_file(
        self, key: str, path: Path, max_bytes: int | None = None, deadline: float | None = None
    ) -> str | None:
        """Stream an object into a local file; its sha256, or None when it does not exist."""
        try:
            with self._open(key) as opened:
                if opened is None:
                    return None
                f, size = opened
                if max_bytes is not None and size > max_bytes:
                    raise ObjectRefused(
                        f"{self.path(key)}: {size} bytes, over the {max_bytes} allowed; not copied"
                    )
                with open(path, "wb") as out:
                    return copy_bounded(f.read, out, str(self.path(key)), max_bytes, deadline)
        except StorageError:
            raise
        except OSError as exc:
            if exc.errno in LOCAL_DISK_ERRORS:
                raise  # the local disk, not the channel
            raise StorageError(f"cannot copy {self.path(key)}: {exc}") from exc

    def get_tagged(self, key: str, max_bytes: int | None = None) -> tuple[bytes | None, str | None]:
        data = self.get(key, max_bytes)
        return data, (hashlib.sha256(data).hexdigest() if data is not None else None)

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        """Replace ``key`` only if it still holds what ``tag`` names (None: only if absent).
        An ``flock`` on a lock file beside it serialises publishers on one file system."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = target.with_name(f".{target.name}.lock")
        with open(lock, "a+b") as lf:
            fcntl.flock(lf.fileno(), fcntl.LOCK_EX)
            try:
                _, current = self.get_tagged(key)
                if current != tag:
                    return False
                self.put(key, data)
                return True
            finally:
                fcntl.flock(lf.fileno(), fcntl.LOCK_UN)

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
            if p.is_file() and not p.name.endswith((".tmp", ".lock"))
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

    conditional = True  # S3's If-Match / If-None-Match (AWS since 2024, MinIO, moto)

    def _get(self, key: str, max_bytes: int | None) -> Any:
        response = self._call(f"get {key}", self.client.get_object, Key=self.key(key))
        if response is None:
            return None
        size = int(response.get("ContentLength") or 0)
        if max_bytes is not None and size > max_bytes:
            response["Body"].close()
            raise ObjectRefused(f"{self.uri}/{key}: {size} bytes, over the {max_bytes} allowed; not read")
        return response

    def _read(
        self, key: str, response: Any, out: IO[bytes], max_bytes: int | None, deadline: float | None
    ) -> str:
        from botocore.exceptions import BotoCoreError

        body = response["Body"]
        # read1: whatever one socket read brings (each bounded by the read timeout), so the
        # overall deadline is checked however slowly the bytes trickle in
        raw: Any = getattr(body, "_raw_stream", None)
        read = raw.read1 if hasattr(raw, "read1") else body.read
        try:
            return copy_bounded(read, out, f"{self.uri}/{key}", max_bytes, deadline)
        except BotoCoreError as exc:
            raise StorageError(f"get {key} on {self.uri}: {exc}") from exc
        finally:
            body.close()

    def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        import io

        response = self._get(key, max_bytes)
        if response is None:
            return None
        buf = io.BytesIO()
        self._read(key, response, buf, max_bytes, None)
        return buf.getvalue()

    def get_to_file(
        self, key: str, path: Path, max_bytes: int | None = None, deadline: float | None = None
    ) -> str | None:
        response = self._get(key, max_bytes)
        if response is None:
            return None
        with open(path, "wb") as out:
            return self._read(key, response, out, max_bytes, deadline)

    def get_tagged(self, key: str, max_bytes: int | None = None) -> tuple[bytes | None, str | None]:
        import io

        response = self._get(key, max_bytes)
        if response is None:
            return None, None
        buf = io.BytesIO()
        self._read(key, response, buf, max_bytes, None)
        return buf.getvalue(), str(response.get("ETag"))

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        """``PutObject`` with ``If-None-Match: *`` (tag None) or ``If-Match: tag``; False
        when another writer got there first. A store without conditional writes answers
        ``NotImplemented``: then it is a plain put (see docs/deploy.md on racing publishers)."""
        from botocore.exceptions import BotoCoreError, ClientError

        condition = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data, **condition)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            if code in ("NotImplemented", "501"):
                self.conditional = False
                self.put(key, data)
                return True
            raise StorageError(f"put {key} on {self.uri}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"put {key} on {self.uri}: {exc}") from exc
        return True

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
