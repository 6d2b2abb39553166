"""The feedback spool: images the model was unsure about, kept on disk until they are
uploaded to the raw image store.

An item is two files named by the image's sha256: ``<sha256>.<ext>`` (the bytes as
received) and ``<sha256>.json`` (model version, scores, time, device id). Both are
written atomically, the image first: the ``.json`` is the commit mark, so after a crash
an image without its ``.json`` is debris and is removed at start-up.

Bound and policy: the spool holds at most ``max_bytes`` (images + metadata). When an
item would exceed it, the **newest item is dropped** (the spool keeps what it already
holds, which is older and so more likely to be uploaded first); the
``dropped_full`` counter says how many. A disk that refuses a write (ENOSPC, read-only)
counts in ``write_errors``; an image already spooled counts in ``duplicates``.

The uploader (a background thread) sends each item to the raw image store as
``feedback/<sha256>.<ext>`` then ``feedback/<sha256>.json``, skipping objects that are
already there (the key is the content hash: uploading twice stores once), and deletes
the local item only after both objects are in the store. Failures are retried with
exponential backoff; nothing is deleted before it is stored, so a restart loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runtime.agent import Backoff
from edge_runtime.storage import Store, atomic_write

log = logging.getLogger(__name__)

PREFIX = "feedback"


FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
FORMAT_EXTENSIONS |= {"WEBP": "webp", "PPM": "ppm", "ICO": "ico", "JPEG2000": "jp2", "TGA": "tga"}


def image_extension(data: bytes, image_format: str | None = None) -> str:
    """A file extension for encoded image bytes: from Pillow's ``image_format`` when the
    runtime decoded them, else from their magic number (jpg when unknown)."""
    if image_format:
        return FORMAT_EXTENSIONS.get(image_format.upper(), image_format.lower()[:8] or "jpg")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "jpg"


@dataclass
class SpoolCounters:
    spooled: int = 0
    duplicates: int = 0
    dropped_full: int = 0
    write_errors: int = 0
    uploaded: int = 0
    already_in_store: int = 0
    upload_errors: int = 0


class FeedbackSpool:
    """A bounded on-disk queue of feedback images (see the module docstring for the policy)."""

    def __init__(self, folder: Path, max_bytes: int = 512 * 2**20) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive, got {max_bytes}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.counters = SpoolCounters()
        self._lock = threading.Lock()
        self._bytes = 0
        self._recover()

    def _recover(self) -> None:
        """Remove debris of interrupted writes and count what the spool holds."""
        total = 0
        for path in self.folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            if path.suffix != ".json" and not path.with_suffix(".json").exists():
                log.warning("spool: removing %s, an image whose metadata was never written", path)
                path.unlink(missing_ok=True)
                continue
            total += path.stat().st_size
        self._bytes = total
        if total:
            log.info(
                "spool %s: %d items, %d bytes waiting from before", self.folder, len(self.items()), total
            )

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def items(self) -> list[str]:
        """The sha256 of every complete item, oldest first."""
        metas = sorted(self.folder.glob("*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [p.stem for p in metas]

    def _image_path(self, sha: str) -> Path | None:
        for path in self.folder.glob(f"{sha}.*"):
            if path.suffix != ".json" and not path.name.startswith("."):
                return path
        return None

    def add(
        self,
        data: bytes,
        metadata: dict[str, Any],
        image_format: str | None = None,
        sha256: str | None = None,
    ) -> str:
        """Spool an image; returns what happened: spooled, duplicate, dropped_full or
        write_error (a disk that refuses the write, e.g. read-only or full: counted, never
        raised, so the request still gets its answer)."""
        sha = sha256 or hashlib.sha256(data).hexdigest()  # the caller's, when it hashed already
        meta = json.dumps({**metadata, "sha256": sha, "bytes": len(data)}, sort_keys=True).encode()
        with self._lock:
            meta_path = self.folder / f"{sha}.json"
            if meta_path.exists():
                self.counters.duplicates += 1
                return "duplicate"
            size = len(data) + len(meta)
            if self._bytes + size > self.max_bytes:
                self.counters.dropped_full += 1
                if self.counters.dropped_full == 1 or self.counters.dropped_full % 100 == 0:
                    log.warning(
                        "spool %s full (%d of %d bytes): dropping the newest image (%d dropped so far)",
                        self.folder,
                        self._bytes,
                        self.max_bytes,
                        self.counters.dropped_full,
                    )
                return "dropped_full"
            image_path = self.folder / f"{sha}.{image_extension(data, image_format)}"
            try:
                atomic_write(image_path, data)
                atomic_write(meta_path, meta)
            except OSError as exc:
                with contextlib.suppress(OSError):  # the same disk may refuse the clean-up too
                    image_path.unlink(missing_ok=True)
                self.counters.write_errors += 1
                log.error("spool %s: cannot write %s: %s", self.folder, image_path.name, exc)
                return "write_error"
            self._bytes += size
            self.counters.spooled += 1
            return "spooled"

    def upload_one(self, store: Store, sha: str) -> bool:
        """Upload one item (skipping objects already stored) and remove it locally.
        Returns True when the item is in the store; raises on a store error."""
        meta_path = self.folder / f"{sha}.json"
        image_path = self._image_path(sha)
        if image_path is None or not meta_path.exists():
            return False
        image_key = f"{PREFIX}/{image_path.name}"
        meta_key = f"{PREFIX}/{sha}.json"
        present = 0
        if store.exists(image_key):
            present += 1
        else:
            store.put_file(image_key, image_path)
        if store.exists(meta_key):
            present += 1
        else:
            store.put_file(meta_key, meta_path)
        with self._lock:
            size = image_path.stat().st_size + meta_path.stat().st_size
            meta_path.unlink(missing_ok=True)  # the commit mark goes first
            image_path.unlink(missing_ok=True)
            self._bytes = max(0, self._bytes - size)
            if present == 2:
                self.counters.already_in_store += 1
            else:
                self.counters.uploaded += 1
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "items": len(self.items()),
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "policy": "drop-newest when full",
            **self.counters.__dict__,
        }


class Uploader:
    """Drains a spool into the raw image store in a background thread."""

    def __init__(
        self, spool: FeedbackSpool, store: Store, idle_s: float = 5.0, backoff: Backoff | None = None
    ) -> None:
        self.spool = spool
        self.store = store
        self.idle_s = idle_s
        self.backoff = backoff or Backoff(base=1.0, cap=300.0)
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def drain(self) -> int:
        """Upload everything spooled now; returns how many items went. Raises on a store error."""
        done = 0
        for sha in self.spool.items():
            if self._stop.is_set():
                break
            if self.spool.upload_one(self.store, sha):
                done += 1
        return done

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="uploader", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Upload soon (new items), unless the store is failing: then the backoff decides."""
        if self.backoff.failures == 0:
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.drain()
                if done:
                    log.info("uploader: %d feedback images sent to %s", done, self.store.uri)
                self.last_error = None
                self.backoff.reset()
                delay = self.idle_s
            except Exception as exc:  # a store error of any kind: keep the items, retry later
                self.spool.counters.upload_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self.backoff.next_delay()
                log.error(
                    "uploader: %s; %d items kept, retrying in %.1f s", exc, len(self.spool.items()), delay
                )
            self._wake.wait(delay)
            self._wake.clear()
