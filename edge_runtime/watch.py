"""Folder-watch mode, for cameras that drop image files into a folder.

Every ``poll_s`` the watcher lists ``input_dir`` (not its sub-folders) for image files
(``IMAGE_SUFFIXES``, case-insensitive). A file is taken only once its size and
modification time have not changed between two scans (the camera has finished
writing it). For each file it writes ``<output_dir>/<stem>.json`` (the same JSON as
``POST /v1/predict``, plus ``file``), atomically, then moves the image to
``<input_dir>/processed/`` (or ``--processed``). With ``draw`` it also writes
``<output_dir>/<stem>.drawn.jpg``, the image with the boxes drawn, for a person to look
at. A file that is not a decodable image
goes to ``<input_dir>/failed/`` with a ``<stem>.error.json`` beside the results. While
no model is loaded yet, files wait in the input folder. A name already present in the
processed folder gets a numeric suffix: nothing is overwritten.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from edge_runtime.page import draw_boxes, jpeg
from edge_runtime.runtime import BadImageError, EdgeRuntime, NoModelError
from edge_runtime.storage import atomic_write

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/<stem>.<n><suffix>`` with the first n not taken."""
    target = folder / name
    n = 1
    while target.exists():
        target = folder / f"{Path(name).stem}.{n}{Path(name).suffix}"
        n += 1
    return target


class FolderWatcher:
    def __init__(
        self,
        runtime: EdgeRuntime,
        input_dir: Path,
        output_dir: Path | None = None,
        processed_dir: Path | None = None,
        poll_s: float = 1.0,
        draw: bool = False,
    ) -> None:
        self.runtime = runtime
        self.draw = draw
        self.input_dir = Path(input_dir)
        if not self.input_dir.is_dir():
            raise FileNotFoundError(f"watch folder {self.input_dir} does not exist")
        self.output_dir = Path(output_dir) if output_dir else self.input_dir
        self.processed_dir = Path(processed_dir) if processed_dir else self.input_dir / "processed"
        self.failed_dir = self.input_dir / "failed"
        for folder in (self.output_dir, self.processed_dir, self.failed_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.poll_s = poll_s
        self.processed = 0
        self.failed = 0
        self._seen: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()

    def _stable_files(self) -> list[Path]:
        """Image files whose size and mtime are unchanged since the previous scan."""
        stable: list[Path] = []
        current: dict[str, tuple[int, int]] = {}
        for entry in sorted(os.scandir(self.input_dir), key=lambda e: e.name):
            if not entry.is_file() or entry.name.startswith("."):
                continue
            if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            st = entry.stat()
            current[entry.name] = (st.st_size, st.st_mtime_ns)
            if self._seen.get(entry.name) == current[entry.name]:
                stable.append(Path(entry.path))
        self._seen = current
        return stable

    def scan_once(self) -> int:
        """Process the files that are ready; returns how many were handled."""
        handled = 0
        for path in self._stable_files():
            if self._stop.is_set():
                break
            try:
                data = path.read_bytes()
                result = self.runtime.predict(data, source=f"watch:{path.name}")
            except NoModelError as exc:
                log.warning("watch: %s waits, %s", path.name, exc)
                break
            except (BadImageError, OSError) as exc:
                self._fail(path, str(exc))
            except Exception as exc:  # the model failed on this file: set it aside, go on
                log.exception("watch: prediction on %s failed", path)
                self._fail(path, f"prediction failed: {type(exc).__name__}: {exc}")
            else:
                out = self.output_dir / f"{path.stem}.json"
                atomic_write(out, json.dumps({**result, "file": path.name}, indent=2).encode())
                if self.draw:
                    self._draw(path, data, result)
                os.replace(path, free_name(self.processed_dir, path.name))
                self.processed += 1
            self._seen.pop(path.name, None)
            handled += 1
        return handled

    def _draw(self, path: Path, data: bytes, result: dict[str, Any]) -> None:
        """The image with its boxes drawn, beside the results (a copy: the image itself
        moves to the processed folder untouched). Only results with boxes are drawn."""
        if "detections" not in result:
            return
        try:
            with Image.open(io.BytesIO(data)) as img:
                image = ImageOps.exif_transpose(img) or img
                drawn = draw_boxes(image, result["detections"])
            atomic_write(self.output_dir / f"{path.stem}.drawn.jpg", jpeg(drawn, quality=90))
        except Exception as exc:  # the results stand; the picture is an extra
            log.warning("watch: could not draw %s: %s", path.name, exc)

    def _fail(self, path: Path, error: str) -> None:
        self.failed += 1
        log.error("watch: %s: %s; moved to %s", path, error, self.failed_dir)
        atomic_write(
            self.output_dir / f"{path.stem}.error.json",
            json.dumps({"file": path.name, "error": error}, indent=2).encode(),
        )
        if path.exists():
            os.replace(path, free_name(self.failed_dir, path.name))

    def run(self) -> None:
        log.info("watching %s (results to %s)", self.input_dir, self.output_dir)
        while not self._stop.is_set():
            self.scan_once()
            self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
