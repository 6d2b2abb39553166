"""The prediction log: one JSON line per image, for the monitoring pipeline.

Each line holds ``time`` (ISO 8601 UTC), ``model``, ``version``, ``variant``,
``latency_ms``, ``boxes`` (count), ``max_score`` (0 when nothing was detected),
``box_sizes`` (per detection ``[width, height]`` in original-image pixels, xyxy boxes'
sides), ``classes`` (per detection), the image statistics of ``edge_runtime.imagestats`` (the
same function the monitoring pipeline applies to its reference data: brightness,
contrast, sharpness, colour means, saturation, width, height, aspect), ``feedback``
(why the image was spooled, or null) and ``source``.

The file is appended under a lock and rotated once it passes ``max_bytes``
(``predictions.jsonl`` -> ``predictions.jsonl.1``, the older ``.1`` is dropped), so the
log never grows without bound on a device.

Once ``start()``-ed, the image statistics and the write happen in a background thread:
``submit`` queues only the image's ``imagestats.thumbnail`` (at most 256 px on its long
side, under 200 KB) and its size, never the decoded image, so the queue holds at most
``queue_size`` small thumbnails whatever the clients send. When the
device cannot keep up, lines are dropped and counted in ``dropped`` (shown in
``/healthz``) rather than slowing predictions down. Without ``start()`` (tests, tools)
``submit`` writes at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from edge_runtime.detector import Detection
from edge_runtime.imagestats import image_stats, thumb_stats, thumbnail
from edge_runtime.worker import QueueWorker

log = logging.getLogger(__name__)

__all__ = ["PredictionLog", "image_stats", "record"]


def record(
    detections: list[Detection], stats: dict[str, float], latency_ms: float, **fields: Any
) -> dict[str, Any]:
    """The log line of one image (see the module docstring)."""
    return {
        **fields,
        "latency_ms": round(latency_ms, 3),
        "boxes": len(detections),
        "max_score": round(max((d.score for d in detections), default=0.0), 4),
        "box_sizes": [[round(d.box[2] - d.box[0], 1), round(d.box[3] - d.box[1], 1)] for d in detections],
        "classes": [d.class_name for d in detections],
        **stats,
    }


Pending = tuple[Image.Image, tuple[int, int], list[Detection], float, dict[str, Any]]


class PredictionLog:
    def __init__(self, path: Path, max_bytes: int = 64 * 2**20, queue_size: int = 16) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.lines = 0
        self.errors = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._worker: QueueWorker[Pending] = QueueWorker("predlog", self._log, self._failed, queue_size)

    def submit(
        self,
        image: Image.Image,
        detections: list[Detection],
        latency_ms: float,
        fields: dict[str, Any],
        size: tuple[int, int] | None = None,
    ) -> None:
        """Log one prediction, in the background once started. ``image`` may already be
        its ``thumbnail`` when ``size`` gives the size of the image as sent."""
        thumb = image if size is not None else thumbnail(image)
        item = (thumb, size or image.size, detections, latency_ms, fields)
        if not self._worker.running:
            self._log(item)
        elif not self._worker.offer(item):
            self.dropped += 1

    def _log(self, item: Pending) -> None:
        thumb, (width, height), detections, latency_ms, fields = item
        self.write(record(detections, thumb_stats(thumb, width, height), latency_ms, **fields))

    def _failed(self, exc: Exception) -> None:  # a bad line must not stop the log
        self.errors += 1
        log.error("prediction log: cannot log a prediction: %s", exc)

    def start(self) -> None:
        self._worker.start()

    def flush(self) -> None:
        """Wait until every submitted prediction is written."""
        self._worker.join()

    def stop(self) -> None:
        self._worker.stop()

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock:
            try:
                if self.path.exists() and self.path.stat().st_size > self.max_bytes:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line)
                self.lines += 1
            except OSError as exc:  # a full disk must not stop predictions
                self.errors += 1
                if self.errors == 1 or self.errors % 100 == 0:
                    log.error(
                        "prediction log %s: cannot write (%s); %d lines lost", self.path, exc, self.errors
                    )
